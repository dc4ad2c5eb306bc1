import DEECore
import Redis

/// The dead-letter stream `<prefix>:deadletter` (SPEC 9): entries the engine gave up on, with the error and the
/// entry's original fields, so an operator can read them and re-drive them through the ingress stream.
public struct Deadletters: Sendable {
    public let keys: Keys
    public let maxLen: Int

    public init(keys: Keys, maxLen: Int) {
        self.keys = keys
        self.maxLen = maxLen
    }

    /// The `XADD` of a dead letter. `source` is `ingress` or `partition <p>`; `fields` the entry's own fields, kept
    /// in order as a JSON array of [field, value] pairs (`entry`), so a re-drive sends exactly what was sent.
    public func add(commandId: String, source: String, error: String, fields: [(String, String)]) -> [String] {
        let pairs = JSONValue.array(fields.map { .array([.string($0.0), .string($0.1)]) })
        return [
            "XADD", keys.deadletter, "MAXLEN", "~", String(maxLen), "*", "commandId", commandId, "source", source,
            "error", error, "entry", pairs.canonical,
        ]
    }

    /// The newest dead letters first, at most `limit`.
    public func list(limit: Int, _ redis: any RedisCommands) throws -> [JSONValue] {
        let reply = try redis.call(["XREVRANGE", keys.deadletter, "+", "-", "COUNT", String(limit)])
        return reply.streamEntries.map { item in
            var o: [String: JSONValue] = ["id": .string(item.id)]
            for (k, v) in item.fields where k != "entry" { o[k] = .string(v) }
            o["entry"] = Self.fields(item.fields["entry"] ?? "").map { pairs in
                .object(Dictionary(pairs.map { ($0.0, JSONValue.string($0.1)) }, uniquingKeysWith: { a, _ in a }))
            } ?? .null
            return .object(o)
        }
    }

    /// Re-adds a dead letter's original fields to the ingress stream, with the original `requestId` (or the
    /// original command id as one, so a re-drive of a command that did apply somewhere is not applied twice), and
    /// deletes the dead letter. Returns the new ingress entry id, or nil when there is no such dead letter.
    public func redrive(_ id: String, _ redis: any RedisCommands) throws -> String? {
        guard let item = try redis.call(["XRANGE", keys.deadletter, id, id]).streamEntries.first,
            let original = Self.fields(item.fields["entry"] ?? "")
        else { return nil }
        var fields = original
        if !fields.contains(where: { $0.0 == "requestId" }) {
            fields.append(("requestId", item.fields["commandId"] ?? id))
        }
        let added = try redis.call(["XADD", keys.commands, "*"] + fields.flatMap { [$0.0, $0.1] })
        try redis.call(["XDEL", keys.deadletter, id])
        return added.string
    }

    /// The fields kept in a dead letter's `entry`: `[[field, value], …]`.
    static func fields(_ text: String) -> [(String, String)]? {
        guard let items = JSONValue.parse(text)?.array else { return nil }
        var out: [(String, String)] = []
        for item in items {
            guard let pair = item.array, pair.count == 2, let k = pair[0].string, let v = pair[1].string else {
                return nil
            }
            out.append((k, v))
        }
        return out
    }
}
