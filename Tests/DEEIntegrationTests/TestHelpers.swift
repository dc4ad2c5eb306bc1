import DEEClient
import DEECore
import DEEStore
import Foundation
import Logging
import Redis
import Testing

/// Small helpers shared by the integration tests.

/// JSON text of a Foundation value (dictionaries, arrays, strings, numbers), keys sorted.
func js(_ value: Any) -> String {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
    return String(decoding: data, as: UTF8.self)
}

/// A contact JSON object with the given id.
func contact(_ id: String, _ extra: [String: Any] = [:]) -> String {
    var o: [String: Any] = ["id": id, "email": "\(id)@example.com"]
    for (k, v) in extra { o[k] = v }
    return js(o)
}

/// A minimal linear plan with the given id (action, end), optionally with a different name or outcome.
func simplePlan(_ id: String, name: String? = nil, outcome: String = "done") -> String {
    js([
        "id": id, "name": name ?? id,
        "steps": [
            ["id": "first", "type": "action", "action": "send_email", "params": ["template": "t"]],
            ["id": "last", "type": "end", "outcome": outcome],
        ],
    ])
}

extension DEEReply {
    var array: [Any] { (json as? [Any]) ?? [] }
    /// `result.runs` of a listRuns reply.
    var runs: [[String: Any]] { (object["runs"] as? [[String: Any]]) ?? [] }
    var runIds: [String] { runs.compactMap { $0["id"] as? String } }
    var total: Int? { object["total"] as? Int }
    /// The milliseconds of the command's ingress entry id.
    var commandMs: Int64? { commandId.flatMap { EntryID($0) }.map { Int64($0.ms) } }
}

extension DEEClient {
    /// Registers a plan and expects success.
    @discardableResult
    func register(_ plan: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> DEEReply {
        let r = try call("registerPlan", ["plan": plan])
        #expect(r.ok, "\(r.fields)", sourceLocation: sourceLocation)
        return r
    }

    /// Executes `planId` for contact `contactId` and returns the run id (expects success).
    @discardableResult
    func run(_ planId: String, _ contactId: String, _ extra: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation)
        throws -> String
    {
        var fields = ["planId": planId, "contact": contact(contactId)]
        for (k, v) in extra { fields[k] = v }
        let r = try call("execute", fields)
        #expect(r.ok, "\(r.fields)", sourceLocation: sourceLocation)
        return try #require(r.object["id"] as? String, sourceLocation: sourceLocation)
    }

    func getRun(_ runId: String) throws -> [String: Any] {
        try call("getRun", ["runId": runId]).object
    }

    func stats() throws -> DEEReply { try call("stats") }
}

extension TestEngine.Env {
    /// A stream's entries, oldest first, as (id, fields).
    func stream(_ suffix: String) throws -> [(id: String, fields: [String: String])] {
        try redis.call(["XRANGE", key(suffix), "-", "+"]).streamEntries
    }

    func xlen(_ suffix: String) throws -> Int { try redis.call(["XLEN", key(suffix)]).int ?? 0 }

    func exists(_ suffix: String) throws -> Bool { try redis.call(["EXISTS", key(suffix)]).int == 1 }

    /// The contact's record (layout 3, ContactRecords) in partition `p`: its value, nil when it has none.
    func contactRecord(_ contactId: String, partition p: Int = 0) throws -> String? {
        try redis.call(["HGET", key("{\(p)}:\(ContactRecords.suffix(contactId))"), contactId]).string
    }

    /// The contact's run ids, creation order, from its record.
    func contactRuns(_ contactId: String, partition p: Int = 0) throws -> [String] {
        ContactRecords.runIds(try contactRecord(contactId, partition: p))
    }

    /// The contact's open run of a plan (its enrollment), from its record.
    func enrolled(_ planId: String, _ contactId: String, partition p: Int = 0) throws -> String? {
        ContactRecords.openRun(try contactRecord(contactId, partition: p), planId: planId)
    }

    /// Every enrollment of partition `p` (runs tagged open in a contact record): how many.
    func enrollments(partition p: Int = 0) throws -> Int { try enrollmentCount(redis, base: key("{\(p)}")) }

    /// The entries of `P:rejected` for a command entry id.
    func rejected(_ commandId: String) throws -> [[String: String]] {
        try stream("rejected").map(\.fields).filter { $0["commandId"] == commandId }
    }

    /// A run's audit entries as stored (oldest first), parsed.
    func auditList(_ runId: String, partition: Int = 0) throws -> [[String: Any]] {
        let items = try redis.call(["LRANGE", key("{\(partition)}:audit:\(runId)"), "0", "-1"]).array ?? []
        return items.compactMap { item in
            item.string.flatMap { $0.data(using: .utf8) }.flatMap {
                try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
            }
        }
    }
}

/// How many runs of the partition at `base` hold an enrollment (runs tagged open in a contact record).
func enrollmentCount(_ redis: RedisConnection, base: String) throws -> Int {
    var n = 0
    var cursor = "0"
    repeat {
        let reply = try redis.call(["SCAN", cursor, "MATCH", "\(base):cx:*", "COUNT", "1000"])
        cursor = reply.array?.first?.string ?? "0"
        for k in (reply.array?.last?.array ?? []).compactMap(\.string) {
            for value in (try redis.call(["HVALS", k]).array ?? []).compactMap(\.string) {
                n += value.split(separator: " ").filter { $0.contains("/") }.count
            }
        }
    } while cursor != "0"
    return n
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass; returns whether it held.
func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try condition() { return true }
        usleep(20_000)
    } while Date() < deadline
    return false
}

/// Matches an ISO-8601 UTC time with milliseconds, as JavaScript prints it.
func isISO(_ value: Any?) -> Bool {
    guard let s = value as? String else { return false }
    return s.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression) != nil
}

/// A log handler that keeps what it is given (tests read back what a service logged).
final class CapturedLog: LogHandler, @unchecked Sendable {
    struct Line {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }
    private let lock = NSLock()
    private var captured: [Line] = []
    var lines: [Line] { lock.withLock { captured } }

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var m: [String: String] = [:]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { m[k] = "\(v)" }
        lock.withLock { captured.append(Line(level: event.level, message: "\(event.message)", metadata: m)) }
    }
}
