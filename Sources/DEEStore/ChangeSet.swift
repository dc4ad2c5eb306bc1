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
    /// Seconds a terminal run's audit list is kept (nil: no expiry).
    public var auditRetention: Int?

    public init(entry: EntryID?) { self.entry = entry }

    public var isEmpty: Bool { changes.isEmpty }

    /// The apply script's ARGV[1], written straight to bytes: key order does not matter to the script, and
    /// building a JSONValue tree first was the engine's largest cost per command.
    public func payload(epoch: String, maxlen: Int) -> String {
        var w = JSONWriter()
        w.open()
        w.key("epoch"); w.string(epoch)
        w.key("entry"); w.string(entry?.description ?? "")
        w.key("maxlen"); w.int(maxlen)
        if let batch {
            w.key("batch"); w.open()
            w.key("key"); w.string(batch.key)
            w.key("n"); w.int(batch.n)
            w.key("state"); w.string(batch.state)
            w.close()
        }
        if let dedupe {
            w.key("dedupe"); w.open()
            w.key("key"); w.string(dedupe.key)
            w.key("value"); w.string(dedupe.value)
            w.key("ttl"); w.int(dedupe.ttl)
            w.close()
        }
        if let share {
            w.key("share"); w.open()
            w.key("key"); w.string(share.key)
            w.key("value"); w.string(share.value)
            w.key("ttl"); w.int(share.ttl)
            w.close()
        }
        if let planCopy {
            w.key("plan"); w.open()
            w.key("key"); w.string(planCopy.key)
            w.key("json"); w.string(planCopy.json)
            w.close()
        }
        if let suppress {
            w.key("suppress"); w.open()
            w.key("contact"); w.string(suppress.contact)
            w.key("value"); w.string(suppress.value)
            w.close()
        }
        if let unsuppress { w.key("unsuppress"); w.string(unsuppress) }
        if let clock { w.key("clock"); w.int(clock) }
        if let auditRetention { w.key("retention"); w.int(auditRetention) }
        w.key("runs"); w.openArray()
        for change in changes {
            let run = change.run
            w.open()
            w.key("id"); w.string(run.id)
            let fields = change.fieldChanges
            w.key("set"); w.openArray()
            for (field, value) in fields.set {
                w.string(field)
                w.string(value)
            }
            w.closeArray()
            w.key("del"); w.openArray()
            for field in fields.deleted { w.string(field) }
            w.closeArray()
            let scheduled = run.status != .paused && run.status.isOpen
            w.key("status"); w.string(run.status.rawValue)
            w.key("score"); w.int(Int(run.startedAt))
            w.key("created"); w.bool(change.created)
            w.key("plan"); w.string(run.planId)
            w.key("contact"); w.string(run.contactId)
            w.key("due"); w.int(scheduled ? (run.due ?? -1) : -1)
            w.key("old"); w.string(change.before?.status.rawValue ?? "")
            if change.created {
                w.key("enroll"); w.string("set")
            } else if !run.status.isOpen {
                w.key("enroll"); w.string("del")
            }
            w.close()
        }
        w.closeArray()
        // Arrays stay present even when empty, so the script can iterate them.
        w.key("events"); w.openArray()
        for change in changes {
            for e in change.events { w.strings(e.fields) }
        }
        w.closeArray()
        w.key("actions"); w.openArray()
        for change in changes {
            for a in change.actions { w.strings(a.fields) }
        }
        w.closeArray()
        w.key("audit"); w.openArray()
        for change in changes {
            for a in change.audit { w.strings([change.run.id, a.storedText]) }
        }
        w.closeArray()
        w.close()
        return w.text
    }
}

/// Appends JSON to a byte buffer, commas handled; for payloads whose key order does not matter.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    private var needComma = false

    init() { bytes.reserveCapacity(2048) }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func comma() {
        if needComma { bytes.append(UInt8(ascii: ",")) }
    }

    mutating func open() {
        comma()
        bytes.append(UInt8(ascii: "{"))
        needComma = false
    }

    mutating func close() {
        bytes.append(UInt8(ascii: "}"))
        needComma = true
    }

    mutating func openArray() {
        comma()
        bytes.append(UInt8(ascii: "["))
        needComma = false
    }

    mutating func closeArray() {
        bytes.append(UInt8(ascii: "]"))
        needComma = true
    }

    mutating func key(_ k: String) {
        comma()
        JSONValue.writeString(k, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        needComma = false
    }

    mutating func string(_ s: String) {
        comma()
        JSONValue.writeString(s, to: &bytes)
        needComma = true
    }

    mutating func int(_ i: Int) {
        comma()
        bytes.append(contentsOf: String(i).utf8)
        needComma = true
    }

    mutating func bool(_ b: Bool) {
        comma()
        bytes.append(contentsOf: (b ? "true" : "false").utf8)
        needComma = true
    }

    mutating func strings(_ items: [String]) {
        openArray()
        for item in items { string(item) }
        closeArray()
    }
}

/// What the apply script answered.
public enum ApplyResult: Sendable, Equatable {
    case ok
    /// Another process holds the partition now: stop writing.
    case fenced
    /// This entry or batch was applied before; nothing was written.
    case alreadyApplied
}
