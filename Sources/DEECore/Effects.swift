import Crypto

/// An entry for `<prefix>:{p}:events` (SPEC 7).
public struct RunEvent: Sendable, Equatable {
    public let type: String
    public let runId: String
    public let planId: String
    public let contactId: String
    public let status: RunStatus
    public let step: String?
    public let tick: Int
    public let at: Int64

    public init(_ type: String, run: Run, tick: Int, at: Int64) {
        self.type = type
        self.runId = run.id
        self.planId = run.planId
        self.contactId = run.contactId
        self.status = run.status
        self.step = run.currentStep
        self.tick = tick
        self.at = at
    }

    /// Stream entry fields, in order.
    public var fields: [String] {
        [
            "type", type, "runId", runId, "planId", planId, "contactId", contactId, "status", status.rawValue,
            "step", step ?? "", "tick", String(tick), "at", Timestamp.iso(at),
        ]
    }
}

/// An entry for `<prefix>:{p}:actions`: a request to an executor service.
public struct ActionRequest: Sendable, Equatable {
    public let runId: String
    public let contactId: String
    public let planId: String
    public let step: String
    public let action: String
    public let params: JSONValue
    public let attempt: Int
    public let tick: Int
    public let idempotencyKey: String

    public init(
        runId: String, contactId: String, planId: String, step: String, action: String, params: JSONValue,
        attempt: Int, tick: Int
    ) {
        self.runId = runId
        self.contactId = contactId
        self.planId = planId
        self.step = step
        self.action = action
        self.params = params
        self.attempt = attempt
        self.tick = tick
        self.idempotencyKey = ActionRequest.key(runId: runId, step: step, tick: tick, attempt: attempt)
    }

    /// SHA-256 of (runId, step, tick, attempt), truncated to 32 hex digits: deterministic, so a replayed
    /// or redelivered step asks for the same key and an executor sends once.
    public static func key(runId: String, step: String, tick: Int, attempt: Int) -> String {
        // The digest of the four joined by U+001F, taken part by part; its first 16 bytes in hex.
        var hash = SHA256()
        Hex.update(&hash, runId)
        Hex.update(&hash, "\u{1F}")
        Hex.update(&hash, step)
        Hex.update(&hash, "\u{1F}")
        Hex.update(&hash, String(tick))
        Hex.update(&hash, "\u{1F}")
        Hex.update(&hash, String(attempt))
        return Hex.encode(hash.finalize().prefix(16))
    }

    public var fields: [String] {
        [
            "runId", runId, "contactId", contactId, "planId", planId, "step", step, "action", action,
            "params", params.canonical, "attempt", String(attempt), "tick", String(tick),
            "idempotencyKey", idempotencyKey,
        ]
    }
}

/// One entry of a run's audit log (SPEC 7), hash-chained to the run's previous entry.
public struct AuditEntry: Sendable, Equatable {
    public let at: Int64
    public let actor: String?
    public let action: String
    public let runId: String
    public let reason: String?
    public let requestId: String
    public let commandId: String
    public let tick: Int
    public let details: JSONValue
    public let previousChecksum: String
    public let checksum: String
    /// The text stored in Redis: the canonical body with the checksum in front (key order is irrelevant to
    /// readers; verification recomputes the canonical body).
    public let storedText: String

    public static func == (a: AuditEntry, b: AuditEntry) -> Bool {
        a.at == b.at && a.actor == b.actor && a.action == b.action && a.runId == b.runId && a.reason == b.reason
            && a.requestId == b.requestId && a.commandId == b.commandId && a.tick == b.tick && a.details == b.details
            && a.previousChecksum == b.previousChecksum && a.checksum == b.checksum
    }

    /// Everything but the checksum, canonical: what the checksum covers (with the previous checksum inside).
    public static func body(
        at: Int64, actor: String?, action: String, runId: String, reason: String?, requestId: String,
        commandId: String, tick: Int, details: JSONValue, previousChecksum: String
    ) -> JSONValue {
        .object([
            "at": .string(Timestamp.iso(at)), "actor": actor.json, "action": .string(action), "runId": .string(runId),
            "reason": reason.json, "requestId": .string(requestId), "commandId": .string(commandId),
            "tick": .int(tick), "details": details, "previousChecksum": .string(previousChecksum),
        ])
    }

    /// `body(...).canonical`, printed directly in the keys' sorted order without building the object
    /// (AuditTests checks the two agree). Every change prints one.
    public static func bodyText(
        at: Int64, actor: String?, action: String, runId: String, reason: String?, requestId: String,
        commandId: String, tick: Int, details: JSONValue, previousChecksum: String
    ) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(384)
        // Keys as literal bytes, in sorted order (each key through the string escaper was ~1% of the owner).
        func text(_ s: String?) {
            if let s { JSONValue.writeString(s, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        out.append(contentsOf: #"{"action":"#.utf8); text(action)
        out.append(contentsOf: #","actor":"#.utf8); text(actor)
        out.append(contentsOf: #","at":"#.utf8); text(Timestamp.iso(at))
        out.append(contentsOf: #","commandId":"#.utf8); text(commandId)
        out.append(contentsOf: #","details":"#.utf8)
        details.write(to: &out)
        out.append(contentsOf: #","previousChecksum":"#.utf8); text(previousChecksum)
        out.append(contentsOf: #","reason":"#.utf8); text(reason)
        out.append(contentsOf: #","requestId":"#.utf8); text(requestId)
        out.append(contentsOf: #","runId":"#.utf8); text(runId)
        out.append(contentsOf: #","tick":"#.utf8); JSONValue.writeInt(tick, to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The stored and replied form.
    public var json: JSONValue {
        var o = Self.body(
            at: at, actor: actor, action: action, runId: runId, reason: reason, requestId: requestId,
            commandId: commandId, tick: tick, details: details, previousChecksum: previousChecksum
        ).object!
        o["checksum"] = .string(checksum)
        return .object(o)
    }

    public init(
        at: Int64, actor: String?, action: String, runId: String, reason: String?, requestId: String,
        commandId: String, tick: Int, details: JSONValue, previousChecksum: String, checksum: String,
        storedText: String? = nil
    ) {
        self.at = at
        self.actor = actor
        self.action = action
        self.runId = runId
        self.reason = reason
        self.requestId = requestId
        self.commandId = commandId
        self.tick = tick
        self.details = details
        self.previousChecksum = previousChecksum
        self.checksum = checksum
        if let storedText {
            self.storedText = storedText
        } else {
            let body = Self.body(
                at: at, actor: actor, action: action, runId: runId, reason: reason, requestId: requestId,
                commandId: commandId, tick: tick, details: details, previousChecksum: previousChecksum)
            self.storedText = Self.stored(bodyText: body.canonical, checksum: checksum)
        }
    }

    static func stored(bodyText: String, checksum: String) -> String {
        "{\"checksum\":\"" + checksum + "\"," + bodyText.dropFirst()
    }

    public init?(json: JSONValue) {
        guard let o = json.object, let atText = o["at"]?.string, let at = Timestamp.parse(atText),
            let action = o["action"]?.string, let runId = o["runId"]?.string,
            let requestId = o["requestId"]?.string, let commandId = o["commandId"]?.string,
            let tick = o["tick"]?.int, let prev = o["previousChecksum"]?.string, let sum = o["checksum"]?.string
        else { return nil }
        self.init(
            at: at, actor: o["actor"]?.string, action: action, runId: runId, reason: o["reason"]?.string,
            requestId: requestId, commandId: commandId, tick: tick, details: o["details"] ?? .null,
            previousChecksum: prev, checksum: sum)
    }
}

/// Computes and checks audit checksums: SHA-256 over the previous checksum and the entry's canonical form, or
/// HMAC-SHA256 with a key kept outside Redis.
public struct AuditSigner: Sendable {
    public let key: [UInt8]?

    public init(key: [UInt8]? = nil) { self.key = key }

    public func checksum(body: JSONValue, previous: String) -> String {
        checksum(bodyText: body.canonical, previous: previous)
    }

    /// The digest of `previous`, a newline and `bodyText` (HMAC-SHA-256 with the key, else SHA-256), taken part by
    /// part rather than of their concatenation (a copy of the ~600-byte body per audit entry).
    public func checksum(bodyText: String, previous: String) -> String {
        if let key {
            var mac = HMAC<SHA256>(key: SymmetricKey(data: key))
            Hex.update(&mac, previous)
            Hex.update(&mac, "\n")
            Hex.update(&mac, bodyText)
            return Hex.encode(mac.finalize())
        }
        var hash = SHA256()
        Hex.update(&hash, previous)
        Hex.update(&hash, "\n")
        Hex.update(&hash, bodyText)
        return Hex.encode(hash.finalize())
    }

    /// Checks a run's entries, oldest first, against the chain head and count the run keeps.
    public func verify(entries: [AuditEntry], head: String, count: Int) -> (valid: Bool, brokenAt: Int?) {
        var previous = Run.genesis
        for (i, e) in entries.enumerated() {
            let body = AuditEntry.body(
                at: e.at, actor: e.actor, action: e.action, runId: e.runId, reason: e.reason, requestId: e.requestId,
                commandId: e.commandId, tick: e.tick, details: e.details, previousChecksum: e.previousChecksum)
            if e.previousChecksum != previous || checksum(body: body, previous: previous) != e.checksum {
                return (false, i)
            }
            previous = e.checksum
        }
        if entries.count != count || previous != head {
            return (false, min(entries.count, count))
        }
        return (true, nil)
    }
}

/// What a command or tick does to one run: its new state and the effects written with it, atomically.
public struct RunChange: Sendable, Equatable {
    public var run: Run
    /// The run did not exist before (indexes by plan, contact and time are added once).
    public var created: Bool
    /// The run as it was read, so that only changed fields are written.
    public let before: Run?
    public var events: [RunEvent] = []
    public var actions: [ActionRequest] = []
    public var audit: [AuditEntry] = []

    public init(run: Run, created: Bool = false) {
        self.run = run
        self.created = created
        self.before = created ? nil : run
    }

    /// The stored fields to write (set) and to remove (deleted), by their layout-2 names (``Run/storedNames``):
    /// all of them for a new run, else the changes. Fields are compared as typed values and printed only when they
    /// changed (printing the variables and the contact of both versions of every run was a tenth of a tick's
    /// engine time). A deleted field is listed under both its names, so that a run hash still in layout 1 (before
    /// `dee migrate` reached it) keeps no stale long-named value for a reader to fall back to.
    public var fieldChanges: (set: [(String, String)], deleted: [String]) {
        guard let old = before else {
            return (run.presentStoredFields, [])
        }
        let r = run
        var set: [(String, String)] = []
        var deleted: [String] = []
        func diff(_ field: String, _ long: String, _ changed: Bool, _ value: @autoclosure () -> String?) {
            guard changed else { return }
            if let v = value() {
                set.append((field, v))
            } else {
                deleted.append(field)
                deleted.append(long)
            }
        }
        // The fields of Run.storedFields, in its order (RunTests checks the two agree). A field stored relative to
        // another (currentTick to startTick, startedAt to the id) is compared in its stored form.
        let impliedStart = Run.startedAt(impliedBy: r.id)
        let oldImpliedStart = Run.startedAt(impliedBy: old.id)
        diff("p", "planId", r.planId != old.planId, r.planId)
        diff("v", "planVersion", r.planVersion != old.planVersion, String(r.planVersion))
        diff("c", "contactId", r.contactId != old.contactId, r.contactId)
        diff("s", "status", r.status != old.status, r.status.rawValue)
        diff("st", "currentStep", r.currentStep != old.currentStep, r.currentStep)
        diff("n", "stepsCompleted", r.stepsCompleted != old.stepsCompleted, Run.nonZero(r.stepsCompleted))
        diff("r", "stepsRemaining", r.stepsRemaining != old.stepsRemaining, Run.nonZero(r.stepsRemaining))
        diff("t0", "startTick", r.startTick != old.startTick, Run.nonZero(r.startTick))
        diff(
            "t", "currentTick", r.currentTick != old.currentTick || r.startTick != old.startTick,
            r.currentTick == r.startTick ? nil : String(r.currentTick))
        diff(
            "sa", "startedAt", r.startedAt != old.startedAt || impliedStart != oldImpliedStart,
            impliedStart == r.startedAt ? nil : String(r.startedAt))
        diff("ca", "completedAt", r.completedAt != old.completedAt, r.completedAt.map { String($0) })
        diff("o", "outcome", r.outcome != old.outcome, r.outcome)
        diff(
            "vr", "variables", r.variables != old.variables,
            r.variables.isEmpty ? nil : JSONValue.object(r.variables).canonical)
        diff("e", "error", r.error != old.error, r.error)
        diff("ct", "contact", r.contact != old.contact, r.contact.isEmpty ? nil : JSONValue.object(r.contact).canonical)
        diff("pf", "pausedFrom", r.pausedFrom != old.pausedFrom, r.pausedFrom?.rawValue)
        diff("d", "due", r.due != old.due, r.due.map { String($0) })
        diff("at", "attempt", r.attempt != old.attempt, Run.nonZero(r.attempt))
        diff("k", "awaitKey", r.awaitKey != old.awaitKey, r.awaitKey)
        diff("df", "deferred", r.deferred != old.deferred, r.deferred.isEmpty ? nil : JSONValue.array(r.deferred).canonical)
        diff("h", "auditHead", r.auditHead != old.auditHead, r.auditHead == Run.genesis ? nil : r.auditHead)
        diff("a", "auditCount", r.auditCount != old.auditCount, Run.nonZero(r.auditCount))
        return (set, deleted)
    }
}

/// Who and what caused a change: everything time- or identity-dependent comes from here, never from a clock.
public struct ChangeContext: Sendable, Equatable {
    /// The ingress entry id of the command or tick.
    public let commandId: EntryID
    /// The explicit requestId, or the ingress entry id.
    public let requestId: String
    public let actor: String?
    /// The partition's clock when the change happens (the tick being processed, for a tick).
    public let clock: Int

    public init(commandId: EntryID, requestId: String, actor: String?, clock: Int) {
        self.commandId = commandId
        self.requestId = requestId
        self.actor = actor
        self.clock = clock
    }

    /// Timestamps come from the entry id's milliseconds.
    public var at: Int64 { Int64(clamping: commandId.ms) }
}

extension RunChange {
    /// Appends an audit entry and moves the run's chain head.
    public mutating func audit(
        _ action: String, reason: String? = nil, details: JSONValue, context: ChangeContext, signer: AuditSigner
    ) {
        let bodyText = AuditEntry.bodyText(
            at: context.at, actor: context.actor, action: action, runId: run.id, reason: reason,
            requestId: context.requestId, commandId: context.commandId.description, tick: context.clock,
            details: details, previousChecksum: run.auditHead)
        let sum = signer.checksum(bodyText: bodyText, previous: run.auditHead)
        audit.append(
            AuditEntry(
                at: context.at, actor: context.actor, action: action, runId: run.id, reason: reason,
                requestId: context.requestId, commandId: context.commandId.description, tick: context.clock,
                details: details, previousChecksum: run.auditHead, checksum: sum,
                storedText: AuditEntry.stored(bodyText: bodyText, checksum: sum)))
        run.auditHead = sum
        run.auditCount = Tick.incremented(run.auditCount)
    }

    public mutating func event(_ type: String, context: ChangeContext) {
        events.append(RunEvent(type, run: run, tick: context.clock, at: context.at))
    }
}
