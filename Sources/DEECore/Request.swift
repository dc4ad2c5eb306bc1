/// Filters of `listRuns` and `bulkCancel`.
public struct RunFilter: Sendable, Equatable {
    public var statuses: [RunStatus]?
    public var planId: String?
    public var contactId: String?
    /// Epoch ms; the window is [startedAfter, startedBefore).
    public var startedAfter: Int64?
    public var startedBefore: Int64?

    public init(
        statuses: [RunStatus]? = nil, planId: String? = nil, contactId: String? = nil, startedAfter: Int64? = nil,
        startedBefore: Int64? = nil
    ) {
        self.statuses = statuses
        self.planId = planId
        self.contactId = contactId
        self.startedAfter = startedAfter
        self.startedBefore = startedBefore
    }

    public var isEmpty: Bool {
        statuses == nil && planId == nil && contactId == nil && startedAfter == nil && startedBefore == nil
    }

    public func matches(_ run: Run) -> Bool {
        if let statuses, !statuses.contains(run.status) { return false }
        if let planId, run.planId != planId { return false }
        if let contactId, run.contactId != contactId { return false }
        if let startedAfter, run.startedAt < startedAfter { return false }
        if let startedBefore, run.startedAt >= startedBefore { return false }
        return true
    }
}

/// Where a run's plan comes from.
public enum PlanReference: Sendable, Equatable {
    case inline(Plan)
    case id(String, version: Int?)

    public var planId: String {
        switch self {
        case .inline(let p): return p.id
        case .id(let id, _): return id
        }
    }
}

/// Whom a signal is for.
public enum SignalTarget: Sendable, Equatable {
    case contact(String)
    case run(String)
}

/// A decoded, validated command (SPEC 6).
public enum Request: Sendable, Equatable {
    case registerPlan(Plan)
    case getPlan(planId: String, version: Int?)
    case listPlans
    case execute(plan: PlanReference, contact: [String: JSONValue], contactId: String, variables: [String: JSONValue], startTick: Int?)
    /// Contacts stay raw: one that fails validation is counted in `errors`, not a reason to reject the command.
    case bulkExecute(plan: PlanReference, contacts: [JSONValue], variables: [String: JSONValue], batchSize: Int)
    case getRun(runId: String)
    case listRuns(filter: RunFilter, limit: Int, offset: Int)
    case pauseRun(runId: String, reason: String?)
    case resumeRun(runId: String)
    case cancelRun(runId: String, reason: String)
    case bulkCancel(filter: RunFilter, reason: String)
    case tick(count: Int)
    case signal(target: SignalTarget, name: String, data: [String: JSONValue]?, planId: String?)
    case actionResult(runId: String, idempotencyKey: String, ok: Bool, error: String?, data: [String: JSONValue]?)
    case suppress(contactId: String, reason: String?)
    case unsuppress(contactId: String)
    case getAudit(runId: String, limit: Int)
    case verifyAudit(runId: String)
    case replay(runId: String)
    case stats
    /// The newest dead letters (SPEC 9's poison messages), for operators.
    case listDeadletters(limit: Int)
    /// Re-adds a dead letter's command to the ingress stream (with its requestId, or its command id as one).
    case redriveDeadletter(id: String)

    /// Commands that change nothing.
    public var isReadOnly: Bool {
        switch self {
        case .getPlan, .listPlans, .getRun, .listRuns, .getAudit, .verifyAudit, .replay, .stats, .listDeadletters:
            return true
        default: return false
        }
    }
}

/// Limits on commands (SPEC 6); past one, `too_large`.
public struct Limits: Sendable, Equatable {
    public var maxEntryBytes = 16 * 1024 * 1024
    public var maxContacts = 100_000
    public var maxLimit = 1000
    public var maxTickCount = 100_000
    public var maxRequestIdLength = 128

    public init() {}
}

/// A command entry as read from the ingress stream, decoded.
public struct Envelope: Sendable, Equatable {
    public let type: String
    public let requestId: String?
    public let replyTo: String?
    public let actor: String?
    /// The decoded arguments, normalised (so that the same command sent as `args` JSON or as fields is equal).
    public let arguments: [String: JSONValue]
    public let request: Request

    /// The arguments as canonical JSON (what the router copies into an inbox entry).
    public var canonicalArguments: String { JSONValue.object(arguments).canonical }

    /// Identifies the command's content for requestId reuse checks: SHA-256 of the type and canonical arguments.
    public var fingerprint: String { Self.fingerprint(type: type, canonicalArguments: canonicalArguments) }

    /// ``fingerprint`` from arguments already printed (the router prints them once for both).
    public static func fingerprint(type: String, canonicalArguments: String) -> String {
        Hex.sha256(type + "\n" + canonicalArguments)
    }
}

/// The partial header of an entry whose decoding failed: enough to reply to it.
public struct EntryHeader: Sendable, Equatable {
    public var type: String?
    public var requestId: String?
    public var replyTo: String?
    public var actor: String?
}

/// Decodes ingress entries (SPEC 5).
public struct RequestDecoder: Sendable {
    public let prefix: String
    public let limits: Limits

    public init(prefix: String, limits: Limits = Limits()) {
        self.prefix = prefix
        self.limits = limits
    }

    enum ArgType {
        case string, int, bool, object, array, status, time
    }

    static let specs: [String: [(String, ArgType)]] = [
        "registerPlan": [("plan", .object)],
        "getPlan": [("planId", .string), ("version", .int)],
        "listPlans": [],
        "execute": [
            ("plan", .object), ("planId", .string), ("planVersion", .int), ("contact", .object),
            ("variables", .object), ("startTick", .int),
        ],
        "bulkExecute": [
            ("plan", .object), ("planId", .string), ("planVersion", .int), ("contacts", .array),
            ("variables", .object), ("batchSize", .int),
        ],
        "getRun": [("runId", .string)],
        "listRuns": [
            ("status", .status), ("planId", .string), ("contactId", .string), ("startedAfter", .time),
            ("startedBefore", .time), ("limit", .int), ("offset", .int),
        ],
        "pauseRun": [("runId", .string), ("reason", .string)],
        "resumeRun": [("runId", .string)],
        "cancelRun": [("runId", .string), ("reason", .string)],
        "bulkCancel": [("filters", .object), ("reason", .string)],
        "tick": [("count", .int)],
        "signal": [("contactId", .string), ("runId", .string), ("name", .string), ("data", .object), ("planId", .string)],
        "actionResult": [
            ("runId", .string), ("idempotencyKey", .string), ("ok", .bool), ("error", .string), ("data", .object),
        ],
        "suppress": [("contactId", .string), ("reason", .string)],
        "unsuppress": [("contactId", .string)],
        "getAudit": [("runId", .string), ("limit", .int)],
        "verifyAudit": [("runId", .string)],
        "replay": [("runId", .string)],
        "stats": [],
        "listDeadletters": [("limit", .int)],
        "redriveDeadletter": [("id", .string)],
    ]

    /// Each command's argument types by name, built once (per call it was a dictionary per command decoded).
    static let argTypes: [String: [String: ArgType]] = specs.mapValues { Dictionary($0, uniquingKeysWith: { a, _ in a }) }

    public static var commandNames: [String] { specs.keys.sorted() }

    static let envelopeFields: Set<String> = ["type", "requestId", "replyTo", "actor", "args"]

    /// Reads what is needed to answer an entry, even a malformed one.
    public func header(_ fields: [(String, String)]) -> EntryHeader {
        var h = EntryHeader()
        for (k, v) in fields {
            switch k {
            case "type": h.type = v
            case "requestId": h.requestId = v
            case "replyTo": h.replyTo = v
            case "actor": h.actor = v
            default: break
            }
        }
        return h
    }

    /// Whether `replyTo` may be written: not a key of the engine's own, except under `<prefix>:replies:`.
    public func validReplyTo(_ key: String) -> Bool {
        guard !key.isEmpty, key.utf8.count <= 512 else { return false }
        if key.hasPrefix(prefix + ":") { return key.hasPrefix(prefix + ":replies:") }
        return true
    }

    /// The first field name given twice. Entries have a handful of fields (the owner decodes two per entry): pairs
    /// compared in place, not a `Set` built per entry (hashing every name was a fifth of the owner's decode).
    static func repeatedName(_ fields: [(String, String)]) -> String? {
        if fields.count > 16 {
            var seen = Set<String>()
            for (k, _) in fields where !seen.insert(k).inserted { return k }
            return nil
        }
        for i in fields.indices.dropFirst() {
            for j in 0..<i where fields[j].0 == fields[i].0 { return fields[i].0 }
        }
        return nil
    }

    public func decode(_ fields: [(String, String)]) throws(DEEError) -> Envelope {
        var size = 0
        for (k, v) in fields { size += k.utf8.count + v.utf8.count }
        guard size <= limits.maxEntryBytes else {
            throw DEEError(.tooLarge, "the entry is \(size) bytes; the limit is \(limits.maxEntryBytes)", field: "args")
        }
        let h = header(fields)
        if let twice = Self.repeatedName(fields) { throw DEEError.badRequest(twice, "is given twice") }
        if let replyTo = h.replyTo, !validReplyTo(replyTo) {
            throw DEEError.badRequest(
                "replyTo", "must be a stream key outside the engine's key space \(prefix):* (or under \(prefix):replies:)")
        }
        guard let type = h.type, !type.isEmpty else {
            throw DEEError.badRequest("type", "is required: the command name (one of \(Self.commandNames.joined(separator: ", ")))")
        }
        guard let spec = Self.specs[type] else {
            throw DEEError(
                .unknownCommand, "unknown command \(Identifier.quoted(type)); known: \(Self.commandNames.joined(separator: ", "))",
                field: "type")
        }
        if let rid = h.requestId {
            guard !rid.isEmpty, rid.utf8.count <= limits.maxRequestIdLength,
                !rid.unicodeScalars.contains(where: { $0.value < 0x20 })
            else {
                throw DEEError.badRequest("requestId", "must be 1-\(limits.maxRequestIdLength) printable characters")
            }
        }
        if let actor = h.actor, actor.utf8.count > 256 {
            throw DEEError.badRequest("actor", "must be at most 256 bytes")
        }
        let types = Self.argTypes[type] ?? [:]
        var args: [String: JSONValue] = [:]
        let argsField = fields.first { $0.0 == "args" }?.1
        if let argsField {
            guard let parsed = JSONValue.parse(argsField), let object = parsed.object else {
                throw DEEError.badRequest("args", "must be a JSON object")
            }
            for (k, _) in fields where !Self.envelopeFields.contains(k) {
                throw DEEError.badRequest(k, "give arguments either in args or as fields, not both")
            }
            for (name, value) in object {
                guard let t = types[name] else { throw unknownArgument(name, type: type, spec: spec) }
                if value.isNull { continue }
                args[name] = try check(value, name: name, type: t)
            }
        } else {
            for (name, text) in fields where !Self.envelopeFields.contains(name) {
                guard let t = types[name] else { throw unknownArgument(name, type: type, spec: spec) }
                args[name] = try fromField(text, name: name, type: t)
            }
        }
        let request = try makeRequest(type, args)
        return Envelope(
            type: type, requestId: h.requestId, replyTo: h.replyTo, actor: h.actor, arguments: args, request: request)
    }

    private func unknownArgument(_ name: String, type: String, spec: [(String, ArgType)]) -> DEEError {
        let known = spec.map(\.0)
        return DEEError.badRequest(
            name, "is not an argument of \(type)" + (known.isEmpty ? " (it takes none)" : " (it takes \(known.joined(separator: ", ")))"))
    }

    private func fromField(_ text: String, name: String, type: ArgType) throws(DEEError) -> JSONValue {
        switch type {
        case .string: return .string(text)
        case .time: return Int64(text).map { .int(Int($0)) } ?? .string(text)
        case .status:
            if text.hasPrefix("[") {
                guard let v = JSONValue.parse(text) else { throw DEEError.badRequest(name, "is not valid JSON") }
                return try check(v, name: name, type: type)
            }
            return .string(text)
        default:
            guard let v = JSONValue.parse(text) else {
                throw DEEError.badRequest(name, "must be \(Self.describe(type)) as JSON text (got \(Identifier.quoted(text)))")
            }
            return try check(v, name: name, type: type)
        }
    }

    private func check(_ v: JSONValue, name: String, type: ArgType) throws(DEEError) -> JSONValue {
        let ok: Bool
        switch type {
        case .string: ok = v.string != nil
        case .int: ok = v.number != nil
        case .bool: ok = v.bool != nil
        case .object: ok = v.object != nil
        case .array: ok = v.array != nil
        case .status: ok = v.string != nil || (v.array?.allSatisfy { $0.string != nil } ?? false)
        case .time: ok = v.string != nil || v.int != nil
        }
        guard ok else { throw DEEError.badRequest(name, "must be \(Self.describe(type)) (got \(v.typeName))") }
        if type == .int {
            // SPEC 6: every number of a command is a whole number from 0 (or the argument's minimum) to
            // 2,147,483,647; a configured limit below that is checked later (too_large).
            let min = Self.minimum[name] ?? 0
            guard let i = WholeNumber.value(v, min: min) else {
                throw DEEError.badRequest(
                    name, "must be a whole number from \(min) to \(WholeNumber.max) (got \(WholeNumber.shown(v)))")
            }
            return .int(i)
        }
        // Epoch ms given as digits in a string or as a number are the same argument (and fingerprint).
        if type == .time, let s = v.string, let ms = Int64(s) { return .int(Int(ms)) }
        return v
    }

    /// The smallest value of a whole-number argument, where it is not 0.
    static let minimum: [String: Int] = ["version": 1, "planVersion": 1, "batchSize": 1, "limit": 1, "count": 1]

    /// Epoch milliseconds a time filter may give: the range of JavaScript's `Date` (±100,000,000 days).
    static let maxEpochMs: Int64 = 8_640_000_000_000_000

    static func describe(_ t: ArgType) -> String {
        switch t {
        case .string: return "a string"
        case .int: return "a whole number"
        case .bool: return "true or false"
        case .object: return "a JSON object"
        case .array: return "a JSON array"
        case .status: return "a status name or a JSON array of them"
        case .time: return "an ISO-8601 time or epoch milliseconds"
        }
    }

    // MARK: - Typed requests

    private func makeRequest(_ type: String, _ a: [String: JSONValue]) throws(DEEError) -> Request {
        func id(_ name: String) throws(DEEError) -> String? {
            guard let s = a[name]?.string else { return nil }
            try Identifier.validate(s, field: name)
            return s
        }
        func requiredID(_ name: String) throws(DEEError) -> String {
            guard let s = try id(name) else { throw DEEError.badRequest(name, "is required") }
            return s
        }
        func runID(_ name: String = "runId") throws(DEEError) -> String {
            let s = try requiredID(name)
            guard RunID.partition(of: s) != nil else {
                throw DEEError(.notFound, "no run \(s) (not a run id of this engine)", field: name)
            }
            return s
        }
        func text(_ name: String, max: Int = 4096) throws(DEEError) -> String? {
            guard let s = a[name]?.string else { return nil }
            guard s.utf8.count <= max else { throw DEEError.badRequest(name, "must be at most \(max) bytes") }
            return s
        }
        func int(_ name: String, min: Int, max: Int? = nil) throws(DEEError) -> Int? {
            guard let n = a[name]?.int else { return nil }
            guard n >= min, n <= WholeNumber.max else {
                throw DEEError.badRequest(name, "must be a whole number from \(min) to \(WholeNumber.max) (got \(n))")
            }
            if let max, n > max { throw DEEError(.tooLarge, "\(name): must be ≤ \(max) (got \(n))", field: name) }
            return n
        }
        func planReference() throws(DEEError) -> PlanReference {
            if let p = a["plan"] {
                if a["planId"] != nil { throw DEEError.badRequest("planId", "give plan or planId, not both") }
                return .inline(try Plan.parse(p))
            }
            guard let pid = try id("planId") else { throw DEEError.badRequest("plan", "plan or planId is required") }
            return .id(pid, version: try int("planVersion", min: 1))
        }
        func variables() throws(DEEError) -> [String: JSONValue] { a["variables"]?.object ?? [:] }
        func filter(_ o: [String: JSONValue], prefix p: String) throws(DEEError) -> RunFilter {
            var f = RunFilter()
            if let s = o["status"] {
                let names: [JSONValue] = s.array ?? [s]
                var statuses: [RunStatus] = []
                for n in names {
                    guard let name = n.string, let st = RunStatus(rawValue: name) else {
                        throw DEEError.badRequest(
                            p + "status", "must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", ")) (got \(n.canonical))")
                    }
                    if !statuses.contains(st) { statuses.append(st) }
                }
                guard !statuses.isEmpty else { throw DEEError.badRequest(p + "status", "must name at least one status") }
                f.statuses = statuses
            }
            for key in ["planId", "contactId"] {
                if let v = o[key] {
                    guard let s = v.string else { throw DEEError.badRequest(p + key, "must be a string") }
                    try Identifier.validate(s, field: p + key)
                    if key == "planId" { f.planId = s } else { f.contactId = s }
                }
            }
            for key in ["startedAfter", "startedBefore"] {
                if let v = o[key] {
                    let ms: Int64?
                    if let i = v.int { ms = Int64(i) } else if let s = v.string { ms = Timestamp.parse(s) } else { ms = nil }
                    guard let ms, ms >= -Self.maxEpochMs, ms <= Self.maxEpochMs else {
                        throw DEEError.badRequest(p + key, "must be an ISO-8601 time (2026-11-23T10:00:00.000Z) or epoch ms")
                    }
                    if key == "startedAfter" { f.startedAfter = ms } else { f.startedBefore = ms }
                }
            }
            return f
        }

        switch type {
        case "registerPlan":
            guard let p = a["plan"] else { throw DEEError.badRequest("plan", "is required") }
            return .registerPlan(try Plan.parse(p))
        case "getPlan":
            return .getPlan(planId: try requiredID("planId"), version: try int("version", min: 1))
        case "listPlans":
            return .listPlans
        case "execute":
            let plan = try planReference()
            guard let contact = a["contact"]?.object else { throw DEEError.badRequest("contact", "is required") }
            guard let cid = contact["id"]?.string else { throw DEEError.badRequest("contact.id", "is required") }
            try Identifier.validate(cid, field: "contact.id")
            let start = try int("startTick", min: 0)
            return .execute(plan: plan, contact: contact, contactId: cid, variables: try variables(), startTick: start)
        case "bulkExecute":
            let plan = try planReference()
            guard let contacts = a["contacts"]?.array else { throw DEEError.badRequest("contacts", "is required") }
            guard contacts.count <= limits.maxContacts else {
                throw DEEError(
                    .tooLarge, "contacts: \(contacts.count) contacts; the limit is \(limits.maxContacts)", field: "contacts")
            }
            let batch = try int("batchSize", min: 1, max: 10_000) ?? 100
            return .bulkExecute(plan: plan, contacts: contacts, variables: try variables(), batchSize: batch)
        case "getRun":
            return .getRun(runId: try runID())
        case "listRuns":
            let f = try filter(a, prefix: "")
            let limit = try int("limit", min: 1, max: limits.maxLimit) ?? 50
            let offset = try int("offset", min: 0) ?? 0
            return .listRuns(filter: f, limit: limit, offset: offset)
        case "pauseRun":
            return .pauseRun(runId: try runID(), reason: try text("reason"))
        case "resumeRun":
            return .resumeRun(runId: try runID())
        case "cancelRun":
            let r = try runID()
            guard let reason = try text("reason") else { throw DEEError.badRequest("reason", "is required") }
            return .cancelRun(runId: r, reason: reason)
        case "bulkCancel":
            guard let fo = a["filters"]?.object else { throw DEEError.badRequest("filters", "is required") }
            for key in fo.keys.sorted() where !["status", "planId", "contactId", "startedAfter", "startedBefore"].contains(key) {
                throw DEEError.badRequest("filters.\(key)", "is not a filter (status, planId, contactId, startedAfter, startedBefore)")
            }
            let f = try filter(fo, prefix: "filters.")
            guard !f.isEmpty else { throw DEEError.badRequest("filters", "needs at least one filter") }
            guard let reason = try text("reason") else { throw DEEError.badRequest("reason", "is required") }
            return .bulkCancel(filter: f, reason: reason)
        case "tick":
            return .tick(count: try int("count", min: 1, max: limits.maxTickCount) ?? 1)
        case "signal":
            guard let name = try id("name") else { throw DEEError.badRequest("name", "is required") }
            let target: SignalTarget
            if a["runId"] != nil {
                if a["contactId"] != nil { throw DEEError.badRequest("runId", "give contactId or runId, not both") }
                target = .run(try runID())
            } else if let c = try id("contactId") {
                target = .contact(c)
            } else {
                throw DEEError.badRequest("contactId", "contactId or runId is required")
            }
            return .signal(target: target, name: name, data: a["data"]?.object, planId: try id("planId"))
        case "actionResult":
            let r = try runID()
            guard let key = try text("idempotencyKey", max: 128) else {
                throw DEEError.badRequest("idempotencyKey", "is required")
            }
            guard let ok = a["ok"]?.bool else { throw DEEError.badRequest("ok", "is required") }
            return .actionResult(runId: r, idempotencyKey: key, ok: ok, error: try text("error"), data: a["data"]?.object)
        case "suppress":
            return .suppress(contactId: try requiredID("contactId"), reason: try text("reason"))
        case "unsuppress":
            return .unsuppress(contactId: try requiredID("contactId"))
        case "getAudit":
            return .getAudit(runId: try runID(), limit: try int("limit", min: 1, max: 10_000) ?? 100)
        case "verifyAudit":
            return .verifyAudit(runId: try runID())
        case "replay":
            return .replay(runId: try runID())
        case "listDeadletters":
            return .listDeadletters(limit: try int("limit", min: 1, max: limits.maxLimit) ?? 50)
        case "redriveDeadletter":
            guard let id = try text("id", max: 64) else { throw DEEError.badRequest("id", "is required") }
            guard EntryID(id) != nil else { throw DEEError.badRequest("id", "must be a dead letter's stream id (1700000000000-0)") }
            return .redriveDeadletter(id: id)
        default:
            return .stats
        }
    }
}
