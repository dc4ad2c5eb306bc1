import Crypto

/// A branch condition (SPEC 2).
public struct Condition: Sendable, Equatable {
    public enum Op: String, Sendable, CaseIterable { case eq, ne, lt, lte, gt, gte, `in`, exists }
    public let variable: String
    public let op: Op
    public let value: JSONValue
}

/// One case of a `branch` step.
public struct BranchCase: Sendable, Equatable {
    public let when: Condition
    public let next: String
}

/// What a step does.
public enum StepKind: Sendable, Equatable {
    case action(
        name: String, params: JSONValue, await: Bool, timeoutTicks: Int?, retries: Int, onFailure: String?)
    case wait(ticks: Int)
    case waitForSignal(signal: String, timeoutTicks: Int?, onSignal: String, onTimeout: String)
    case branch(cases: [BranchCase], defaultNext: String?)
    case end(outcome: String)
}

/// A step of a plan. `next` is resolved at parse time (the following step when not given).
public struct Step: Sendable, Equatable {
    public let id: String
    public let kind: StepKind
    /// The successor of an action or wait; for `waitForSignal`, where `onSignal`/`onTimeout` default to.
    public let next: String?

    public var typeName: String {
        switch kind {
        case .action: return "action"
        case .wait: return "wait"
        case .waitForSignal: return "waitForSignal"
        case .branch: return "branch"
        case .end: return "end"
        }
    }

    /// Every step this one can lead to.
    public var successors: [String] {
        switch kind {
        case .action(_, _, _, _, _, let onFailure): return [next, onFailure].compactMap { $0 }
        case .wait: return [next].compactMap { $0 }
        case .waitForSignal(_, _, let onSignal, let onTimeout): return [onSignal, onTimeout]
        case .branch(let cases, let d): return cases.map(\.next) + [d].compactMap { $0 }
        case .end: return []
        }
    }

    /// The successor on the default path (SPEC 3).
    public var defaultSuccessor: String? {
        switch kind {
        case .action, .wait: return next
        case .waitForSignal(_, _, _, let onTimeout): return onTimeout
        case .branch(let cases, let d): return d ?? cases.first?.next
        case .end: return nil
        }
    }
}

/// A validated plan version.
public struct Plan: Sendable, Equatable {
    public let id: String
    public let name: String
    public let exitOn: [String]
    public let steps: [Step]
    /// The plan as JSON, canonical form; its SHA-256 is the content hash that makes registration idempotent.
    public let canonicalJSON: String
    public let contentHash: String
    /// Warnings from validation that do not reject the plan (an `exitOn` signal also awaited by a step).
    public let warnings: [String]
    private let index: [String: Int]
    private let remaining: [String: Int]

    public var entry: Step { steps[0] }

    public func step(_ id: String) -> Step? { index[id].map { steps[$0] } }

    /// Steps on the default path from `stepID` to an end step, both included.
    public func stepsRemaining(from stepID: String?) -> Int {
        guard let stepID else { return 0 }
        return remaining[stepID] ?? 0
    }

    /// Parses and validates a plan (SPEC 2). Errors are `plan_invalid` naming the path at fault.
    public static func parse(_ json: JSONValue, field: String = "plan") throws(DEEError) -> Plan {
        func fail(_ path: String, _ message: String) -> DEEError {
            DEEError(.planInvalid, "\(path): \(message)", field: path)
        }
        guard let o = json.object else { throw fail(field, "must be a JSON object") }
        guard let id = o["id"]?.string else { throw fail("id", "is required and must be a string") }
        guard Identifier.isValid(id) else {
            throw fail("id", "must be 1-128 characters of A-Z a-z 0-9 . _ - @ +")
        }
        let name: String
        switch o["name"] {
        case nil, .null?: name = id
        case .string(let s)?: name = s
        default: throw fail("name", "must be a string")
        }
        var exitOn: [String] = []
        if let e = o["exitOn"], !e.isNull {
            guard let items = e.array else { throw fail("exitOn", "must be an array of signal names") }
            for (i, item) in items.enumerated() {
                guard let s = item.string, Identifier.isValid(s) else {
                    throw fail("exitOn[\(i)]", "must be a signal name (an id)")
                }
                exitOn.append(s)
            }
        }
        // `version` is what getPlan adds to the plan it returns, so that plan registers again as it is.
        if let v = o["version"], !v.isNull, WholeNumber.value(v) == nil {
            throw fail("version", "must be a whole number from 0 to \(WholeNumber.max) (got \(WholeNumber.shown(v)))")
        }
        let allowedTop: Set<String> = ["id", "name", "exitOn", "steps", "description", "version"]
        for key in o.keys.sorted() where !allowedTop.contains(key) {
            throw fail(key, "is not a plan field (allowed: id, name, exitOn, steps, description)")
        }
        guard let rawSteps = o["steps"]?.array else { throw fail("steps", "is required and must be an array") }
        guard !rawSteps.isEmpty else { throw fail("steps", "must have at least one step") }
        guard rawSteps.count <= 10_000 else { throw fail("steps", "has more than 10000 steps") }

        // First pass: ids, so that references can be checked.
        var index: [String: Int] = [:]
        for (i, raw) in rawSteps.enumerated() {
            guard let so = raw.object else { throw fail("steps[\(i)]", "must be an object") }
            guard let sid = so["id"]?.string else { throw fail("steps[\(i)].id", "is required and must be a string") }
            guard Identifier.isValid(sid) else {
                throw fail("steps[\(i)].id", "must be 1-128 characters of A-Z a-z 0-9 . _ - @ +")
            }
            if let earlier = index[sid] {
                throw fail("steps[\(i)].id", "duplicate step id \"\(sid)\" (also steps[\(earlier)])")
            }
            index[sid] = i
        }

        var steps: [Step] = []
        var warnings: [String] = []
        for (i, raw) in rawSteps.enumerated() {
            let so = raw.object!
            let path = "steps[\(i)]"
            let sid = so["id"]!.string!
            func ref(_ key: String) throws(DEEError) -> String? {
                guard let v = so[key], !v.isNull else { return nil }
                guard let s = v.string else { throw fail("\(path).\(key)", "must be a step id") }
                guard index[s] != nil else { throw fail("\(path).\(key)", "names no step (\"\(s)\")") }
                return s
            }
            /// `ticks` and `timeoutTicks`: whole numbers from 1 to 2,147,483,647 (SPEC 6).
            func positive(_ key: String, required: Bool) throws(DEEError) -> Int? {
                guard let v = so[key], !v.isNull else {
                    if required { throw fail("\(path).\(key)", "is required") }
                    return nil
                }
                guard let n = WholeNumber.value(v, min: 1) else {
                    throw fail("\(path).\(key)", "must be a whole number from 1 to \(WholeNumber.max) (got \(WholeNumber.shown(v)))")
                }
                return n
            }
            guard let type = so["type"]?.string else { throw fail("\(path).type", "is required") }
            let explicitNext = try ref("next")
            let following = i + 1 < rawSteps.count ? (rawSteps[i + 1].object?["id"]?.string) : nil
            let next = explicitNext ?? following
            let kind: StepKind
            var allowed: Set<String> = ["id", "type", "next", "name", "description"]
            switch type {
            case "action":
                allowed.formUnion(["action", "params", "await", "timeoutTicks", "retries", "onFailure"])
                guard let action = so["action"]?.string, !action.isEmpty else {
                    throw fail("\(path).action", "is required and must be a string")
                }
                let params = so["params"] ?? .object([:])
                guard params.isNull || params.object != nil else {
                    throw fail("\(path).params", "must be an object")
                }
                var awaited = false
                if let a = so["await"], !a.isNull {
                    guard let b = a.bool else { throw fail("\(path).await", "must be true or false") }
                    awaited = b
                }
                let timeout = try positive("timeoutTicks", required: awaited)
                var retries = 0
                if let r = so["retries"], !r.isNull {
                    guard let n = WholeNumber.value(r, min: 0, max: 100) else {
                        throw fail("\(path).retries", "must be a whole number from 0 to 100 (got \(WholeNumber.shown(r)))")
                    }
                    retries = n
                }
                let onFailure = try ref("onFailure")
                guard next != nil else { throw fail("\(path).next", "an action needs a following step") }
                kind = .action(
                    name: action, params: params.isNull ? .object([:]) : params, await: awaited,
                    timeoutTicks: timeout, retries: retries, onFailure: onFailure)
            case "wait":
                allowed.insert("ticks")
                let ticks = try positive("ticks", required: true)!
                guard next != nil else { throw fail("\(path).next", "a wait needs a following step") }
                kind = .wait(ticks: ticks)
            case "waitForSignal":
                allowed.formUnion(["signal", "timeoutTicks", "onSignal", "onTimeout"])
                guard let signal = so["signal"]?.string, Identifier.isValid(signal) else {
                    throw fail("\(path).signal", "is required and must be a signal name (an id)")
                }
                let timeout = try positive("timeoutTicks", required: false)
                let onSignal = try ref("onSignal") ?? next
                let onTimeout = try ref("onTimeout") ?? next
                guard let onSignal else { throw fail("\(path).onSignal", "is required when no step follows") }
                guard let onTimeout else { throw fail("\(path).onTimeout", "is required when no step follows") }
                if exitOn.contains(signal) {
                    warnings.append(
                        "\(path).signal: \"\(signal)\" is also in exitOn, which takes precedence: this step never "
                            + "receives it")
                }
                kind = .waitForSignal(signal: signal, timeoutTicks: timeout, onSignal: onSignal, onTimeout: onTimeout)
            case "branch":
                allowed.formUnion(["cases", "default"])
                guard let rawCases = so["cases"]?.array else { throw fail("\(path).cases", "must be an array") }
                var cases: [BranchCase] = []
                for (ci, rc) in rawCases.enumerated() {
                    let cpath = "\(path).cases[\(ci)]"
                    guard let co = rc.object else { throw fail(cpath, "must be an object") }
                    guard let w = co["when"]?.object else { throw fail("\(cpath).when", "must be an object") }
                    guard let v = w["var"]?.string, !v.isEmpty else {
                        throw fail("\(cpath).when.var", "is required and must be a string")
                    }
                    guard let opName = w["op"]?.string, let op = Condition.Op(rawValue: opName) else {
                        throw fail(
                            "\(cpath).when.op", "must be one of \(Condition.Op.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    let value = w["value"] ?? .null
                    if op == .in, value.array == nil { throw fail("\(cpath).when.value", "must be an array for in") }
                    if op != .exists, op != .in, w["value"] == nil {
                        throw fail("\(cpath).when.value", "is required for \(opName)")
                    }
                    guard let n = co["next"]?.string else { throw fail("\(cpath).next", "is required") }
                    guard index[n] != nil else { throw fail("\(cpath).next", "names no step (\"\(n)\")") }
                    cases.append(BranchCase(when: Condition(variable: v, op: op, value: value), next: n))
                }
                let d = try ref("default")
                guard !cases.isEmpty || d != nil else { throw fail("\(path).cases", "a branch needs a case or a default") }
                kind = .branch(cases: cases, defaultNext: d)
            case "end":
                allowed.insert("outcome")
                let outcome: String
                switch so["outcome"] {
                case nil, .null?: outcome = "completed"
                case .string(let s)?: outcome = s
                default: throw fail("\(path).outcome", "must be a string")
                }
                kind = .end(outcome: outcome)
            default:
                throw fail("\(path).type", "must be one of action, wait, waitForSignal, branch, end (got \"\(type)\")")
            }
            for key in so.keys.sorted() where !allowed.contains(key) {
                throw fail("\(path).\(key)", "is not a field of a \(type) step")
            }
            steps.append(Step(id: sid, kind: kind, next: next))
        }
        // Normalise: end steps have no next.
        steps = steps.map { s in
            if case .end = s.kind { return Step(id: s.id, kind: s.kind, next: nil) }
            return s
        }

        // Every step must reach an end step: walk back from the end steps once (linear in steps and references;
        // a fixed-point loop over the steps was cubic, and a 2,000-step plan took 8 s to validate).
        var predecessors: [String: [String]] = [:]
        for s in steps {
            for next in s.successors { predecessors[next, default: []].append(s.id) }
        }
        var reachesEnd = Set(steps.filter { if case .end = $0.kind { return true } else { return false } }.map(\.id))
        var frontier = Array(reachesEnd)
        while let id = frontier.popLast() {
            for p in predecessors[id] ?? [] where reachesEnd.insert(p).inserted { frontier.append(p) }
        }
        for (i, s) in steps.enumerated() where !reachesEnd.contains(s.id) {
            throw fail("steps[\(i)]", "no end step is reachable from \"\(s.id)\"")
        }
        // No loop on the default path; count the steps to the end along it. Each step's count is kept, so every
        // walk stops at the first step already counted: linear in the steps.
        var remaining: [String: Int] = [:]
        for (i, s) in steps.enumerated() {
            var walk: [String] = []
            var onWalk = Set<String>()
            var cursor: String? = s.id
            var tail = 0
            while let c = cursor {
                if let known = remaining[c] {
                    tail = known
                    break
                }
                if !onWalk.insert(c).inserted {
                    throw fail("steps[\(i)]", "the default path from \"\(s.id)\" loops (\((walk + [c]).joined(separator: " → ")))")
                }
                walk.append(c)
                guard let k = index[c] else { break }
                cursor = steps[k].defaultSuccessor
            }
            for (n, id) in walk.enumerated() { remaining[id] = walk.count - n + tail }
        }

        let canonical = json.canonical
        let hash = Hex.sha256(canonical)
        return Plan(
            id: id, name: name, exitOn: exitOn, steps: steps, canonicalJSON: canonical, contentHash: hash,
            warnings: warnings, index: index, remaining: remaining)
    }
}
