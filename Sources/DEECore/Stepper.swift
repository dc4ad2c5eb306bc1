import Foundation

/// Tick-, signal- and action-result-driven semantics of one run (SPEC 2–4), as pure functions: given a run, its
/// plan version and an input, the new run and its effects. Each change carries exactly one audit entry that
/// records the input, so ``Replay`` can re-execute a run from its audit log.
public enum Stepper {
    // MARK: - Ticks

    /// Processes tick `context.clock` for a run that is due (its `due` ≤ the tick). Nil when nothing changes.
    public static func tick(run: Run, plan: Plan, context: ChangeContext, signer: AuditSigner) -> RunChange? {
        let t = context.clock
        guard let due = run.due, due <= t, run.status.isOpen, run.status != .paused else { return nil }
        var change = RunChange(run: run)
        var r = run
        r.currentTick = t
        var notes: [String: JSONValue] = ["from": .string(run.status.rawValue)]
        var eventType = "run.step"
        switch run.status {
        case .pending:
            // Becomes active at its start tick; the first step executes on the next tick.
            r.status = .active
            r.due = Tick.after(t, 1)
            eventType = "run.activated"
        case .waiting:
            completeWait(&r, plan: plan, tick: t, notes: &notes)
            if r.status == .active, r.due == t { eventType = executeCurrent(&r, &change, plan: plan, context: context, notes: &notes) }
        case .active:
            eventType = executeCurrent(&r, &change, plan: plan, context: context, notes: &notes)
        default:
            return nil
        }
        if !r.status.isOpen { r.completedAt = context.at; eventType = r.status == .completed ? "run.completed" : "run.failed" }
        notes["to"] = .string(r.status.rawValue)
        change.run = r
        change.event(eventType, context: context)
        change.audit("tick", details: .object(notes), context: context, signer: signer)
        return change
    }

    /// A wait that ends now: the `wait` step, a `waitForSignal` timeout, or an awaited action's timeout.
    static func completeWait(_ r: inout Run, plan: Plan, tick t: Int, notes: inout [String: JSONValue]) {
        guard let stepID = r.currentStep, let step = plan.step(stepID) else {
            fail(&r, "step \(r.currentStep ?? "nil") is not in plan \(plan.id)")
            return
        }
        switch step.kind {
        case .wait:
            notes["waitEnded"] = .string(step.id)
            advance(&r, to: step.next, plan: plan, due: t)
        case .waitForSignal(_, _, _, let onTimeout):
            notes["timedOut"] = .string(step.id)
            advance(&r, to: onTimeout, plan: plan, due: t)
        case .action(_, _, _, _, let retries, let onFailure):
            notes["actionTimedOut"] = .string(step.id)
            failedAttempt(&r, step: step, retries: retries, onFailure: onFailure, plan: plan, error: "timed out", dueNext: Tick.after(t, 1), dueNow: t)
        default:
            r.status = .active
            r.due = t
        }
    }

    /// Executes the current step at tick `t` (SPEC 4). Returns the event type.
    static func executeCurrent(
        _ r: inout Run, _ change: inout RunChange, plan: Plan, context: ChangeContext, notes: inout [String: JSONValue]
    ) -> String {
        let t = context.clock
        guard let stepID = r.currentStep, let step = plan.step(stepID) else {
            fail(&r, "step \(r.currentStep ?? "nil") is not in plan \(plan.id) version \(r.planVersion)")
            return "run.failed"
        }
        notes["step"] = .string(step.id)
        switch step.kind {
        case .action(let name, let params, let awaited, let timeout, _, _):
            let filled: JSONValue
            do {
                filled = try Template.fill(params, contact: r.contact, variables: r.variables, path: "params")
            } catch {
                fail(&r, "step \(step.id): \(error.message)")
                return "run.failed"
            }
            let attempt = max(r.attempt, 1)
            let request = ActionRequest(
                runId: r.id, contactId: r.contactId, planId: r.planId, step: step.id, action: name, params: filled,
                attempt: attempt, tick: t)
            change.actions.append(request)
            notes["action"] = .string(name)
            notes["attempt"] = .int(attempt)
            notes["idempotencyKey"] = .string(request.idempotencyKey)
            if awaited {
                r.status = .waiting
                r.attempt = attempt
                r.awaitKey = request.idempotencyKey
                r.due = Tick.after(t, timeout ?? 1)
                return "run.waiting"
            }
            r.attempt = 0
            advance(&r, to: step.next, plan: plan, due: Tick.after(t, 1))
            return "run.step"
        case .branch(let cases, let defaultNext):
            var target: String?
            for c in cases {
                switch Condition.evaluate(c.when, contact: r.contact, variables: r.variables) {
                case .success(true):
                    target = c.next
                case .success(false):
                    continue
                case .failure(let message):
                    fail(&r, "step \(step.id): \(message)")
                    return "run.failed"
                }
                break
            }
            guard let next = target ?? defaultNext else {
                fail(&r, "step \(step.id): no case matched and the branch has no default")
                return "run.failed"
            }
            notes["next"] = .string(next)
            advance(&r, to: next, plan: plan, due: Tick.after(t, 1))
            return "run.step"
        case .wait(let ticks):
            r.status = .waiting
            r.due = Tick.after(t, ticks)
            return "run.waiting"
        case .waitForSignal(_, let timeout, _, _):
            r.status = .waiting
            r.due = timeout.map { Tick.after(t, $0) }
            return "run.waiting"
        case .end(let outcome):
            r.stepsCompleted = Tick.incremented(r.stepsCompleted)
            r.end(.completed, outcome: outcome)
            return "run.completed"
        }
    }

    /// Finishes the current step and moves to `next`, active, due at `due`.
    static func advance(_ r: inout Run, to next: String?, plan: Plan, due: Int) {
        r.stepsCompleted = Tick.incremented(r.stepsCompleted)
        r.currentStep = next
        r.stepsRemaining = plan.stepsRemaining(from: next)
        r.status = .active
        r.due = due
        r.awaitKey = nil
        r.attempt = 0
    }

    /// An awaited action failed (result not ok, or timed out): try again next tick, or go to onFailure, or fail.
    static func failedAttempt(
        _ r: inout Run, step: Step, retries: Int, onFailure: String?, plan: Plan, error: String, dueNext: Int, dueNow: Int
    ) {
        r.awaitKey = nil
        if r.attempt <= retries {
            r.attempt = Tick.incremented(r.attempt)
            r.status = .active
            r.due = dueNext
        } else if let onFailure {
            advance(&r, to: onFailure, plan: plan, due: dueNow)
        } else {
            fail(&r, "step \(step.id): action failed after \(r.attempt) attempt(s): \(error)")
        }
    }

    /// Fail closed: the run stops, saying why.
    public static func fail(_ r: inout Run, _ message: String) {
        r.error = message
        r.end(.failed, outcome: nil)
    }

    // MARK: - Signals and action results

    /// A signal named `name` reaching `run`. Nil when the run ignores it (not counted in `delivered`).
    public static func signal(
        run: Run, plan: Plan, name: String, data: [String: JSONValue]?, context: ChangeContext, signer: AuditSigner
    ) -> RunChange? {
        guard run.status.isOpen else { return nil }
        let details: JSONValue = ["signal": .string(name), "data": data.map(JSONValue.object) ?? .null]
        if plan.exitOn.contains(name) {
            var change = RunChange(run: run)
            if let data { change.run.variables.merge(data) { _, new in new } }
            Transitions.finish(&change.run, status: .completed, outcome: name, context: context)
            change.event("run.completed", context: context)
            change.audit("exit", details: details, context: context, signer: signer)
            return change
        }
        guard let stepID = run.currentStep, let step = plan.step(stepID),
            case .waitForSignal(let awaited, _, let onSignal, _) = step.kind, awaited == name
        else { return nil }
        if run.status == .paused, run.pausedFrom == .waiting {
            var change = RunChange(run: run)
            change.run.deferred.append(["kind": "signal", "name": .string(name), "data": data.map(JSONValue.object) ?? .null])
            change.audit("defer", details: details, context: context, signer: signer)
            return change
        }
        guard run.status == .waiting else { return nil }
        var change = RunChange(run: run)
        if let data { change.run.variables.merge(data) { _, new in new } }
        advance(&change.run, to: onSignal, plan: plan, due: Tick.after(context.clock, 1))
        change.run.currentTick = context.clock
        change.event("run.step", context: context)
        change.audit("signal", details: details, context: context, signer: signer)
        return change
    }

    /// An executor's result for an awaited action. Nil when the run is not waiting for that key.
    public static func actionResult(
        run: Run, plan: Plan, key: String, ok: Bool, error: String?, data: [String: JSONValue]?,
        context: ChangeContext, signer: AuditSigner
    ) -> RunChange? {
        guard run.awaitKey == key, let stepID = run.currentStep, let step = plan.step(stepID),
            case .action(_, _, _, _, let retries, let onFailure) = step.kind
        else { return nil }
        let details: JSONValue = [
            "idempotencyKey": .string(key), "ok": .bool(ok), "error": error.json,
            "data": data.map(JSONValue.object) ?? .null,
        ]
        var change = RunChange(run: run)
        if run.status == .paused, run.pausedFrom == .waiting {
            change.run.deferred.append(
                ["kind": "actionResult", "key": .string(key), "ok": .bool(ok), "error": error.json, "data": data.map(JSONValue.object) ?? .null])
            change.audit("defer", details: details, context: context, signer: signer)
            return change
        }
        guard run.status == .waiting else { return nil }
        var r = run
        r.currentTick = context.clock
        if ok {
            if let data { r.variables.merge(data) { _, new in new } }
            advance(&r, to: step.next, plan: plan, due: Tick.after(context.clock, 1))
        } else {
            failedAttempt(
                &r, step: step, retries: retries, onFailure: onFailure, plan: plan, error: error ?? "failed",
                dueNext: Tick.after(context.clock, 1), dueNow: Tick.after(context.clock, 1))
        }
        if !r.status.isOpen { r.completedAt = context.at }
        change.run = r
        change.event(r.status == .failed ? "run.failed" : "run.step", context: context)
        change.audit("actionResult", details: details, context: context, signer: signer)
        return change
    }

    /// After a resume: signals and results kept while paused, in arrival order, before any timer.
    public static func applyDeferred(_ change: inout RunChange, plan: Plan, context: ChangeContext, signer: AuditSigner) {
        let inputs = change.run.deferred
        change.run.deferred = []
        for input in inputs {
            guard let o = input.object else { continue }
            var next: RunChange?
            if o["kind"]?.string == "signal", let name = o["name"]?.string {
                next = applyKept(change.run) { run in
                    signal(run: run, plan: plan, name: name, data: o["data"]?.object, context: context, signer: signer)
                }
            } else if let key = o["key"]?.string, let ok = o["ok"]?.bool {
                next = applyKept(change.run) { run in
                    actionResult(
                        run: run, plan: plan, key: key, ok: ok, error: o["error"]?.string, data: o["data"]?.object,
                        context: context, signer: signer)
                }
            }
            if let next {
                change.run = next.run
                change.events += next.events
                change.actions += next.actions
            }
        }
    }

    private static func applyKept(_ run: Run, _ body: (Run) -> RunChange?) -> RunChange? {
        // Applied inputs are recorded by the resume's audit entry (its details list them), not one entry each.
        body(run).map { c in
            var c = c
            c.run.auditHead = run.auditHead
            c.run.auditCount = run.auditCount
            c.audit = []
            return c
        }
    }
}

/// `{{contact.x}}` and `{{vars.x}}` placeholders in action params (SPEC 2).
public enum Template {
    public struct Missing: Error, Sendable { public let message: String }

    public static func fill(
        _ value: JSONValue, contact: [String: JSONValue], variables: [String: JSONValue], path: String
    ) throws(Missing) -> JSONValue {
        switch value {
        case .string(let s):
            return try fillString(s, contact: contact, variables: variables, path: path)
        case .array(let a):
            var out: [JSONValue] = []
            for (i, v) in a.enumerated() { out.append(try fill(v, contact: contact, variables: variables, path: "\(path)[\(i)]")) }
            return .array(out)
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for k in o.keys.sorted() { out[k] = try fill(o[k]!, contact: contact, variables: variables, path: "\(path).\(k)") }
            return .object(out)
        default:
            return value
        }
    }

    static func lookup(_ name: String, contact: [String: JSONValue], variables: [String: JSONValue]) -> JSONValue? {
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 2 else { return nil }
        var current: JSONValue?
        switch parts[0] {
        case "contact": current = .object(contact)
        case "vars": current = .object(variables)
        default: return nil
        }
        for p in parts.dropFirst() { current = current?.object?[p] }
        if let c = current, c.isNull { return nil }
        return current
    }

    static func fillString(
        _ s: String, contact: [String: JSONValue], variables: [String: JSONValue], path: String
    ) throws(Missing) -> JSONValue {
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return try fillASCII(s, contact: contact, variables: variables, path: path) }
        guard s.contains("{{") else { return .string(s) }
        let trimmed = s.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("{{"), trimmed.hasSuffix("}}"), trimmed.dropFirst(2).dropLast(2).range(of: "{{") == nil {
            let name = String(trimmed.dropFirst(2).dropLast(2)).trimmingCharacters(in: .whitespaces)
            guard let v = lookup(name, contact: contact, variables: variables) else {
                throw Missing(message: "\(path): {{\(name)}} has no value")
            }
            return v
        }
        var out = ""
        var rest = Substring(s)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                out += rest[open.lowerBound...]
                rest = ""
                break
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            guard let v = lookup(name, contact: contact, variables: variables) else {
                throw Missing(message: "\(path): {{\(name)}} has no value")
            }
            out += v.text
            rest = rest[close.upperBound...]
        }
        out += rest
        return .string(out)
    }
}

extension Template {
    /// `fillString` for an ASCII template, on bytes (Foundation's string search was a tenth of a tick's engine
    /// time). The same rules: the whole string one placeholder (spaces and tabs around it) gives the value
    /// itself; otherwise each `{{name}}` is replaced by the value's text, and an unclosed `{{` stays as it is.
    static func fillASCII(
        _ s: String, contact: [String: JSONValue], variables: [String: JSONValue], path: String
    ) throws(Missing) -> JSONValue {
        let b = Array(s.utf8)
        let open = UInt8(ascii: "{"), close = UInt8(ascii: "}")
        guard b.contains(open) else { return .string(s) }
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
        func find(_ c: UInt8, from: Int, to end: Int) -> Int? {
            var i = from
            while i + 1 < end {
                if b[i] == c && b[i + 1] == c { return i }
                i += 1
            }
            return nil
        }
        func trimmed(_ from: Int, _ to: Int) -> (lo: Int, hi: Int) {
            var lo = from, hi = to
            while lo < hi && isSpace(b[lo]) { lo += 1 }
            while hi > lo && isSpace(b[hi - 1]) { hi -= 1 }
            return (lo, hi)
        }
        func name(_ from: Int, _ to: Int) -> String {
            let (lo, hi) = trimmed(from, to)
            return String(decoding: b[lo..<hi], as: UTF8.self)
        }
        let (lo, hi) = trimmed(0, b.count)
        if hi - lo >= 4, b[lo] == open, b[lo + 1] == open, b[hi - 2] == close, b[hi - 1] == close,
            find(open, from: lo + 2, to: hi - 2) == nil
        {
            let n = name(lo + 2, hi - 2)
            guard let v = lookup(n, contact: contact, variables: variables) else {
                throw Missing(message: "\(path): {{\(n)}} has no value")
            }
            return v
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count + 32)
        var i = 0
        while let o = find(open, from: i, to: b.count) {
            out += b[i..<o]
            guard let c = find(close, from: o + 2, to: b.count) else {
                i = o
                break
            }
            let n = name(o + 2, c)
            guard let v = lookup(n, contact: contact, variables: variables) else {
                throw Missing(message: "\(path): {{\(n)}} has no value")
            }
            out += v.text.utf8
            i = c + 2
        }
        out += b[i...]
        return .string(String(decoding: out, as: UTF8.self))
    }
}

extension Condition {
    /// Evaluates a branch condition. A missing variable makes it false (true for nothing but `exists`);
    /// mismatched types are an error, which fails the run.
    public static func evaluate(
        _ c: Condition, contact: [String: JSONValue], variables: [String: JSONValue]
    ) -> Result<Bool, ConditionError> {
        let value: JSONValue?
        if c.variable.hasPrefix("contact.") {
            value = Template.lookup(c.variable, contact: contact, variables: variables)
        } else {
            value = Template.lookup("vars." + c.variable, contact: contact, variables: variables)
        }
        if c.op == .exists { return .success(value != nil) }
        guard let v = value else { return .success(false) }
        switch c.op {
        case .in:
            return .success((c.value.array ?? []).contains { same($0, v) })
        case .eq, .ne:
            guard comparable(v, c.value) else {
                return .failure(ConditionError(message: "\(c.variable) is a \(v.typeName), compared with a \(c.value.typeName)"))
            }
            return .success(same(v, c.value) == (c.op == .eq))
        default:
            let order: Int
            if let o = compareNumbers(v, c.value) {
                order = o
            } else if let a = v.string, let b = c.value.string {
                order = a < b ? -1 : (a > b ? 1 : 0)
            } else {
                return .failure(
                    ConditionError(message: "\(c.variable) is a \(v.typeName); \(c.op.rawValue) needs numbers with numbers or strings with strings, got a \(c.value.typeName)"))
            }
            switch c.op {
            case .lt: return .success(order < 0)
            case .lte: return .success(order <= 0)
            case .gt: return .success(order > 0)
            default: return .success(order >= 0)
            }
        }
    }

    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if a.number != nil, b.number != nil { return compareNumbers(a, b) == 0 }
        return a == b
    }

    /// -1, 0 or 1 as the number `a` is below, equal to or above `b`; nil unless both are numbers (NaN
    /// included). Exact: two integers are not compared as doubles (Int.max and Int.max - 1 differ), and an
    /// integer against a double compares the values themselves, whatever their size.
    static func compareNumbers(_ a: JSONValue, _ b: JSONValue) -> Int? {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.double(let x), .double(let y)):
            if x.isNaN || y.isNaN { return nil }
            return x < y ? -1 : (x > y ? 1 : 0)
        case (.int(let x), .double(let y)): return compare(x, y)
        case (.double(let x), .int(let y)): return compare(y, x).map { -$0 }
        default: return nil
        }
    }

    /// An integer against a double, exactly.
    private static func compare(_ i: Int, _ d: Double) -> Int? {
        if d.isNaN { return nil }
        // 2^63 is exact as a double; every Int is below it and at or above -2^63.
        if d >= 9_223_372_036_854_775_808.0 { return -1 }
        if d < -9_223_372_036_854_775_808.0 { return 1 }
        let whole = d.rounded(.towardZero)
        let w = Int(whole)  // in range: -2^63 ≤ whole < 2^63
        if i != w { return i < w ? -1 : 1 }
        let fraction = d - whole
        return fraction > 0 ? -1 : (fraction < 0 ? 1 : 0)
    }

    static func comparable(_ a: JSONValue, _ b: JSONValue) -> Bool {
        a.typeName == b.typeName || b.isNull || a.isNull
    }
}

public struct ConditionError: Error, Sendable, Equatable {
    public let message: String
}
