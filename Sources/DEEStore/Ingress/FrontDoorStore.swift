import DEECore
import Redis

extension Keys {
    /// A producer's front door: under ACL only the producer `<name>` may `XADD` here (docs/ACCESS.md). The router
    /// copies its entries into ``commands`` with `actor` set to `<name>`.
    public func door(_ name: String) -> String { "\(prefix):commands:\(name)" }
    /// The front doors' watermarks (producer name → id of the last door entry copied). The hash tag is the whole
    /// name of ``commands``, so the hash lives in the ingress stream's Redis Cluster slot and one script writes both.
    public var doors: String { "\(prefix):doors{\(prefix):commands}" }
    /// Where replies to a producer's commands may go: every key starting with this (`<prefix>:replies:<name>:`).
    public func replySpace(_ name: String) -> String { "\(prefix):replies:\(name):" }
}

/// One door's share of a front-door step: what was read after its watermark.
public struct DoorBatch: Sendable {
    public let name: String
    /// The watermark the entries were read after ("0-0" when the door was never copied).
    public let after: String
    /// The entries read, in door order; or the server's error for this door (WRONGTYPE, NOPERM, …).
    public let entries: Result<[DoorEntry], RedisError>
}

public struct DoorEntry: Sendable {
    public let id: String
    public let fields: [(String, String)]
    public init(id: String, fields: [(String, String)]) {
        self.id = id
        self.fields = fields
    }
}

/// What the copy script did with one call.
public struct DoorCopy: Sendable, Equatable {
    public let copied: Int
    public let droppedReplyTo: Int
    /// The door's watermark after the call.
    public let watermark: String

    public init(copied: Int, droppedReplyTo: Int, watermark: String) {
        self.copied = copied
        self.droppedReplyTo = droppedReplyTo
        self.watermark = watermark
    }
}

/// The front doors' Redis reads and writes (docs/ACCESS.md): watermarks, door reads, the copy script, door trims.
/// Blocking: call it from the router's own connection.
public struct FrontDoorStore: Sendable {
    public let keys: Keys
    public let names: [String]

    public init(keys: Keys, names: [String]) {
        self.keys = keys
        self.names = names
    }

    /// Reads every door after its stored watermark (`HMGET`, then one `XREAD … COUNT count` per door, pipelined: the
    /// doors are in different Cluster slots). Never blocks.
    public func read(count: Int, _ redis: any RedisCommands) throws(RedisError) -> [DoorBatch] {
        guard !names.isEmpty else { return [] }
        let marks = try redis.call(["HMGET", keys.doors] + names).array ?? []
        let after = names.indices.map { i in (i < marks.count ? marks[i].string : nil) ?? "0-0" }
        let replies = try redis.pipeline(names.indices.map { i in
            ["XREAD", "COUNT", String(count), "STREAMS", keys.door(names[i]), after[i]]
        })
        return names.indices.map { i in
            let reply = replies[i]
            if case .error(let e) = reply {
                return DoorBatch(name: names[i], after: after[i], entries: .failure(RedisError(.server, e)))
            }
            let entries = IngressStore.streamBatch(reply).map { DoorEntry(id: $0.id, fields: $0.fields) }
            return DoorBatch(name: names[i], after: after[i], entries: .success(entries))
        }
    }

    /// The copy script call for a run of one door's entries; an entry with `fields` nil is refused (only the
    /// watermark moves past it).
    public func copyCall(name: String, _ entries: [(id: String, fields: [(String, String)]?)])
        -> (keys: [String], arguments: [String])
    {
        var argv = [name, keys.replySpace(name)]
        for e in entries {
            let fields = e.fields ?? []
            argv += [e.id, String(fields.count * 2)]
            for (k, v) in fields { argv += [k, v] }
        }
        return ([keys.commands, keys.doors], argv)
    }

    /// Runs copy calls in order, in one pipeline (`EVAL`: each call is atomic and skips what is at or below the
    /// stored watermark, so any prefix of them may run again). Returns each call's outcome, or its server error.
    public func copy(_ calls: [(keys: [String], arguments: [String])], _ redis: any RedisCommands)
        throws(RedisError) -> [Result<DoorCopy, RedisError>]
    {
        guard !calls.isEmpty else { return [] }
        return try redis.evalScriptPipelined(FrontDoorScript.source, calls: calls).map { reply in
            if case .error(let e) = reply { return .failure(RedisError(.server, "front door copy: \(e)")) }
            let parts = reply.array ?? []
            guard parts.count == 3, let copied = parts[0].int, let dropped = parts[1].int, let mark = parts[2].string
            else { return .failure(RedisError(.unexpectedReply, "front door copy answered \(reply)")) }
            return .success(DoorCopy(copied: copied, droppedReplyTo: dropped, watermark: mark))
        }
    }

    /// Trims each door below its watermark (`XTRIM MINID`): what is left was copied already, except the watermark
    /// entry itself, which stays so that the door's last id stays visible to an operator.
    public func trim(_ watermarks: [(name: String, watermark: String)], _ redis: any RedisCommands) throws(RedisError) {
        let commands = watermarks.filter { !$0.watermark.isEmpty }.map {
            ["XTRIM", keys.door($0.name), "MINID", $0.watermark]
        }
        guard !commands.isEmpty else { return }
        _ = try redis.pipeline(commands)
    }
}
