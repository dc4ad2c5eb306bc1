import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// The Redis ACL users of a deployment, as `ACL SETUSER` argument lists (docs/ACCESS.md prints them with prefix
/// `dee`, and AccessControlTests checks that the document holds exactly these lines and runs them on a real Redis).
///
/// - `dee-engine`: the commands the engine sends, directly or from its Lua scripts, on `<prefix>:*` only (the front
///   doors and their watermark hash are under it too). No pub/sub.
/// - `dee-operator`: reads of state, `XADD` to `<prefix>:commands`, reads of replies (what `redis-cli` recipes and a
///   DEEClient need). It cannot write any other key.
/// - `dee-producer-<name>`: `XADD` to its own front door `<prefix>:commands:<name>` only, and reads of
///   `<prefix>:replies:<name>:*`.
public enum AccessControl {
    public static let engineUser = "dee-engine"
    public static let operatorUser = "dee-operator"
    public static func producerUser(_ name: String) -> String { "dee-producer-\(name)" }

    /// Every command the engine sends, directly or from a script (grep the sources for `"X`, `"H`, `'Z`, …; the
    /// ACL test fails on any command or key the engine is refused, from `ACL LOG`). `select` is for a URL with a
    /// database other than 0; `wait` for deployments with replicas (SPEC 9); neither touches a key.
    public static let engineCommands = [
        // streams: ingress (consumer group), inboxes, doors, events, actions, audit, replies, results, dead letters
        "xadd", "xread", "xreadgroup", "xack", "xautoclaim", "xgroup|create", "xpending", "xinfo|groups", "xrange",
        "xrevrange", "xtrim", "xdel", "xlen",
        // hashes: runs, progress, contact records, plans, attempts, door watermarks
        // (and layout 4's index counts: hlen, to read a small count hash whole)
        "hget", "hmget", "hgetall", "hlen", "hset", "hsetnx", "hdel", "hexists", "hincrby",
        // sorted sets: indexes, the due schedule, the members (zscore: run retention checks a bucket lists the run)
        "zadd", "zrem", "zrange", "zcard", "zcount", "zscore", "zremrangebyscore",
        // strings, lists and sets: clocks, watermarks, leases, results, audit lists, plan ids (incrby: the
        // partition's run counter, layout 4)
        "get", "set", "incr", "incrby", "del", "exists", "expire", "pexpire", "rpush", "lrange", "sadd", "smembers", "scard",
        // run retention's script: a key's type, an audit list's ends
        "type", "ltrim", "lindex",
        // scripts and the rest (ping: /healthz)
        "eval", "evalsha", "script|load", "time", "select", "wait", "ping",
        // Redis Cluster: the slot map, redirections during a migration, cluster-mode detection
        "cluster|shards", "cluster|slots", "asking", "info",
    ]

    public static let operatorCommands = [
        "xadd", "xread", "xrange", "xrevrange", "xlen", "xinfo|stream", "xinfo|groups", "xpending",
        "hget", "hmget", "hgetall", "hlen", "hexists", "zrange", "zrevrange", "zcard", "zcount", "zscore",
        "lrange", "llen", "get", "exists", "type", "ttl", "smembers", "scard", "sismember",
        // Redis Cluster (the CLI on a cluster): the slot map, redirections, cluster-mode detection
        "cluster|shards", "cluster|slots", "asking", "info",
    ]

    public static let producerCommands = ["xadd", "xread", "xrange", "xrevrange"]

    /// `ACL SETUSER dee-engine …`: its commands, on every key of the deployment.
    public static func engine(prefix: String, password: String) -> [String] {
        ["ACL", "SETUSER", engineUser, "reset", "on", ">" + password] + engineCommands.map { "+" + $0 }
            + ["~\(prefix):*"]
    }

    /// `ACL SETUSER dee-operator …`: reads of the deployment's keys, writes to the ingress stream only.
    public static func `operator`(prefix: String, password: String) -> [String] {
        ["ACL", "SETUSER", operatorUser, "reset", "on", ">" + password] + operatorCommands.map { "+" + $0 }
            + ["%R~\(prefix):*", "%W~\(prefix):commands"]
    }

    /// `ACL SETUSER dee-producer-<name> …`: writes to its own front door, reads of its own reply space.
    public static func producer(_ name: String, prefix: String, password: String) -> [String] {
        ["ACL", "SETUSER", producerUser(name), "reset", "on", ">" + password] + producerCommands.map { "+" + $0 }
            + ["%W~\(prefix):commands:\(name)", "%R~\(prefix):replies:\(name):*"]
    }

    /// The lines docs/ACCESS.md shows (prefix `dee`, placeholders for names and passwords).
    public static var documentedLines: [String] {
        [
            engine(prefix: "dee", password: "<engine-password>"),
            `operator`(prefix: "dee", password: "<operator-password>"),
            producer("<name>", prefix: "dee", password: "<producer-password>"),
        ].map { $0.joined(separator: " ") }
    }

    /// Producer names that are not usable: each must be an id (SPEC 2: `A–Z a–z 0–9 . _ - @ +`, no colons,
    /// braces, glob characters or spaces), since it becomes part of key names and ACL key patterns.
    public static func invalidProducerNames(_ names: [String]) -> [String] {
        names.filter { !Identifier.isValid($0) }
    }
}

/// The front-door step of the router lease holder (docs/ACCESS.md): for each configured producer, read its door
/// `<prefix>:commands:<name>` after the stored watermark and copy the entries into `<prefix>:commands` with one
/// script call per door per batch (``FrontDoorScript``): `actor` is the producer's name whatever the entry says, a
/// `replyTo` outside `<prefix>:replies:<name>:` is dropped. Then the door is trimmed below its watermark.
///
/// A door that fails with a server error (a key of the wrong type, an ACL refusal) is logged and skipped, so one
/// bad door never stops the others or the main ingress; a connection failure throws, as any router step does.
final class FrontDoors: Sendable {
    let config: EngineConfiguration
    let keys: Keys
    let store: FrontDoorStore
    let logger: Logger
    /// An entry with more fields than this is refused (answered `too_large`, on `<prefix>:rejected`) rather than
    /// copied: no command has more than a few dozen, and a script unpacks at most a few thousand values.
    static let maxFields = 1000
    /// A copy script carries at most about this many bytes of entries (or one entry, when that one is larger).
    static let maxCallBytes = 4 << 20
    /// Per door: the last error logged and how often it happened in a row (a broken door is logged once per 100).
    private let errors = Mutex<[String: (message: String, count: Int)]>([:])

    init(config: EngineConfiguration, logger: Logger) {
        self.config = config
        self.keys = Keys(prefix: config.prefix)
        // `dee serve` validates the names; an engine built in-process skips what would escape its key space.
        let bad = AccessControl.invalidProducerNames(config.producers)
        if !bad.isEmpty { logger.error("ignoring producer names that are not ids", metadata: ["names": "\(bad)"]) }
        self.store = FrontDoorStore(keys: keys, names: config.producers.filter(Identifier.isValid))
        self.logger = logger
    }

    var isEnabled: Bool { !store.names.isEmpty }

    /// One round over every door. Returns how many entries were copied into the ingress stream.
    @discardableResult
    func step(_ redis: any RedisCommands) throws -> Int {
        guard isEnabled else { return 0 }
        var calls: [(keys: [String], arguments: [String])] = []
        var callDoor: [String] = []
        var refusals: [[String]] = []
        for batch in try store.read(count: config.readCount, redis) {
            let entries: [DoorEntry]
            switch batch.entries {
            case .failure(let error):
                report(batch.name, error)
                continue
            case .success(let e):
                entries = e
            }
            guard !entries.isEmpty else { continue }
            // One script call per door per round, of at most about maxCallBytes: the rest is read again next round
            // (after the new watermark). Never two calls for one door in a pipeline: had the first failed, the
            // second would move the watermark past entries never copied.
            var run: [(id: String, fields: [(String, String)]?)] = []
            var bytes = 0
            for entry in entries {
                let wide = entry.fields.count * 2 > Self.maxFields
                let size = wide ? 0 : entry.fields.reduce(entry.id.utf8.count) { $0 + $1.0.utf8.count + $1.1.utf8.count }
                if !run.isEmpty, bytes + size > Self.maxCallBytes { break }
                if wide { refusals += refuse(entry, door: batch.name) }
                run.append((entry.id, wide ? nil : entry.fields))
                bytes += size
            }
            calls.append(store.copyCall(name: batch.name, run))
            callDoor.append(batch.name)
        }
        guard !calls.isEmpty else { return 0 }
        // Refusals first: answered at least once; the copy script then moves the watermark past them.
        if !refusals.isEmpty {
            try config.replicaWait.wait(redis)
            _ = try redis.pipeline(ReplyAddress.expiring(refusals))
        }
        var copied = 0
        var watermarks: [(name: String, watermark: String)] = []
        for (name, outcome) in zip(callDoor, try store.copy(calls, redis)) {
            switch outcome {
            case .failure(let error):
                report(name, error)
            case .success(let c):
                clear(name)
                copied += c.copied
                watermarks.append((name, c.watermark))
                if c.droppedReplyTo > 0 {
                    logger.warning(
                        "a producer named a replyTo outside its reply space; the command is copied without it",
                        metadata: ["producer": "\(name)", "reply_space": "\(keys.replySpace(name))", "count": "\(c.droppedReplyTo)"])
                }
            }
        }
        // A door entry is trimmed only once the replicas have its ingress copy (SPEC 9).
        try config.replicaWait.wait(redis)
        try store.trim(watermarks, redis)
        return copied
    }

    /// The writes that answer a door entry refused before copying: a `<prefix>:rejected` entry naming the door,
    /// and a `too_large` reply when the entry names a `replyTo` in the producer's reply space.
    private func refuse(_ entry: DoorEntry, door name: String) -> [[String]] {
        let error = DEEError(
            .tooLarge, "the entry has \(entry.fields.count * 2) fields; a front door takes at most \(Self.maxFields)",
            field: "args")
        let header = RequestDecoder(prefix: config.prefix, limits: config.limits).header(entry.fields)
        var out: [[String]] = [[
            "XADD", keys.rejected, "MAXLEN", "~", String(config.rejectedMaxLen), "*", "commandId", entry.id,
            "door", keys.door(name), "type", header.type ?? "", "error", error.code.rawValue, "message", error.message,
        ]]
        let replyTo = header.replyTo.flatMap { $0.hasPrefix(keys.replySpace(name)) ? $0 : nil }
        let address = ReplyAddress(
            replyTo: replyTo, requestId: header.requestId ?? entry.id, commandId: entry.id, type: header.type ?? "")
        if let reply = address.command(.error(error), maxLen: config.replyMaxLen) { out.append(reply) }
        logger.warning(
            "refused a front-door entry with too many fields",
            metadata: ["producer": "\(name)", "stream.entry_id": "\(entry.id)", "fields": "\(entry.fields.count * 2)"])
        return out
    }

    private func report(_ name: String, _ error: RedisError) {
        let message = error.description
        let count = errors.withLock { state -> Int in
            let n = state[name].map { $0.message == message ? $0.count + 1 : 1 } ?? 1
            state[name] = (message, n)
            return n
        }
        if count == 1 || count % 100 == 0 {
            logger.error(
                "front door skipped", metadata: ["producer": "\(name)", "door": "\(keys.door(name))", "error": "\(message)", "times": "\(count)"])
        }
    }

    private func clear(_ name: String) {
        errors.withLock { _ = $0.removeValue(forKey: name) }
    }
}
