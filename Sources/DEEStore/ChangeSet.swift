import DEECore

/// Everything one apply script writes: built by the shell from the core's ``RunChange``s, written atomically.
public struct ChangeSet: Sendable {
    /// The inbox entry this change completes, or nil for a batch of a longer command.
    public var entry: EntryID?
    public var batch: (key: String, n: Int, state: String)?
    public var dedupe: (key: String, value: String, ttl: Int)?
    public var share: (key: String, value: String, ttl: Int)?
    public var changes: [RunChange] = []
    public var planCopy: (key: String, json: String)?
    public var suppress: (contact: String, value: String)?
    public var unsuppress: String?
    public var clock: Int?

    public init(entry: EntryID?) { self.entry = entry }

    public var isEmpty: Bool { changes.isEmpty }

    /// The apply script's ARGV[1].
    public func payload(epoch: String, maxlen: Int) -> String {
        var o: [String: JSONValue] = [
            "epoch": .string(epoch), "entry": .string(entry?.description ?? ""), "maxlen": .int(maxlen),
        ]
        if let batch { o["batch"] = ["key": .string(batch.key), "n": .int(batch.n), "state": .string(batch.state)] }
        if let dedupe { o["dedupe"] = ["key": .string(dedupe.key), "value": .string(dedupe.value), "ttl": .int(dedupe.ttl)] }
        if let share { o["share"] = ["key": .string(share.key), "value": .string(share.value), "ttl": .int(share.ttl)] }
        if let planCopy { o["plan"] = ["key": .string(planCopy.key), "json": .string(planCopy.json)] }
        if let suppress { o["suppress"] = ["contact": .string(suppress.contact), "value": .string(suppress.value)] }
        if let unsuppress { o["unsuppress"] = .string(unsuppress) }
        if let clock { o["clock"] = .int(clock) }
        var runs: [JSONValue] = []
        var events: [JSONValue] = []
        var actions: [JSONValue] = []
        var audit: [JSONValue] = []
        for change in changes {
            let run = change.run
            var set: [JSONValue] = []
            var del: [JSONValue] = []
            for (field, value) in run.storedFields {
                if let value {
                    set.append(.string(field))
                    set.append(.string(value))
                } else if !change.created {
                    del.append(.string(field))
                }
            }
            let scheduled = run.status != .paused && run.status.isOpen
            var r: [String: JSONValue] = [
                "id": .string(run.id), "set": .array(set), "del": .array(del), "status": .string(run.status.rawValue),
                "score": .int(Int(run.startedAt)), "created": .bool(change.created), "plan": .string(run.planId),
                "contact": .string(run.contactId), "due": .int(scheduled ? (run.due ?? -1) : -1),
                "head": .string(change.audit.first?.previousChecksum ?? run.auditHead),
            ]
            if change.created {
                r["enroll"] = "set"
            } else if !run.status.isOpen {
                r["enroll"] = "del"
            }
            runs.append(.object(r))
            events += change.events.map { .array($0.fields.map(JSONValue.string)) }
            actions += change.actions.map { .array($0.fields.map(JSONValue.string)) }
            audit += change.audit.map { [.string(run.id), .string($0.json.canonical)] }
        }
        // cjson decodes [] as an empty table either way; keep arrays present so the script can iterate.
        o["runs"] = .array(runs)
        o["events"] = .array(events)
        o["actions"] = .array(actions)
        o["audit"] = .array(audit)
        return JSONValue.object(o).canonical
    }
}

/// What the apply script answered.
public enum ApplyResult: Sendable, Equatable {
    case ok
    /// Another process holds the partition now: stop writing.
    case fenced
    /// This entry or batch was applied before; nothing was written.
    case alreadyApplied
    /// A run changed since it was read; nothing was written.
    case stale(String)
}
