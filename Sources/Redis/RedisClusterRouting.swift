/// Where a cluster client sends a command: by the slot of its key, or (for commands without a key) to any node or to
/// every master.
///
/// Which argument is the key is decided by a small table, not by `COMMAND INFO`: DEE's commands name their key in
/// argument 1 (`HSET key …`, `XADD key …`, `ZRANGE key …`); `EVAL`/`EVALSHA`/`FCALL` name their first key in argument
/// 3 (after the script and the key count); `XREAD`/`XREADGROUP` after `STREAMS`; `XINFO`, `XGROUP`, `OBJECT` and
/// `MEMORY USAGE` in argument 2. A multi-key command is routed by its first key; keys of other slots make the server
/// answer `CROSSSLOT`.
public enum RedisClusterRoute: Sendable, Equatable {
    /// The node that serves this slot.
    case slot(HashSlot)
    /// A command without a key (`PING`, `INFO`, `TIME`, `WAIT`): any node will do. In a pipeline it goes to the node
    /// of the keyed command before it (so `WAIT` follows the writes it waits for), else of the one after it.
    case anyNode
    /// A command that means something on every master (`SCRIPT LOAD`, `SCRIPT FLUSH`, `FLUSHALL`, `FLUSHDB`).
    case everyMaster

    /// The route of `command`.
    public static func of(_ command: [String]) -> RedisClusterRoute {
        guard let key = key(of: command) else {
            return isBroadcast(command) ? .everyMaster : .anyNode
        }
        return .slot(HashSlot(key: key))
    }

    /// The key `command` is routed by, or nil when it has none.
    public static func key(of command: [String]) -> String? {
        guard let name = command.first?.uppercased() else { return nil }
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard command.count > 3, let count = Int(command[2]), count > 0 else { return nil }
            return command[3]
        case "XREAD", "XREADGROUP":
            guard let streams = command.firstIndex(where: { $0.uppercased() == "STREAMS" }),
                streams + 1 < command.count
            else { return nil }
            return command[streams + 1]
        case "XINFO", "XGROUP", "OBJECT":
            return command.count > 2 ? command[2] : nil
        case "MEMORY":
            return command.count > 2 && command[1].uppercased() == "USAGE" ? command[2] : nil
        case _ where keylessCommands.contains(name):
            return nil
        default:
            return command.count > 1 ? command[1] : nil
        }
    }

    private static func isBroadcast(_ command: [String]) -> Bool {
        guard let name = command.first?.uppercased() else { return false }
        switch name {
        case "FLUSHALL", "FLUSHDB": return true
        case "SCRIPT":
            guard command.count > 1 else { return false }
            let sub = command[1].uppercased()
            return sub == "LOAD" || sub == "FLUSH"
        default: return false
        }
    }

    /// Commands whose argument 1, if any, is not a key.
    private static let keylessCommands: Set<String> = [
        "ASKING", "AUTH", "BGREWRITEAOF", "BGSAVE", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DBSIZE", "DEBUG", "ECHO",
        "FLUSHALL", "FLUSHDB", "FUNCTION", "HELLO", "INFO", "KEYS", "LASTSAVE", "LATENCY", "MEMORY", "MODULE",
        "MULTI", "EXEC", "DISCARD", "PING", "PUBLISH", "RANDOMKEY", "READONLY", "READWRITE", "ROLE", "SAVE", "SCAN",
        "SCRIPT", "SELECT", "SHUTDOWN", "SLOWLOG", "TIME", "WAIT", "UNWATCH",
    ]
}

/// A `MOVED` or `ASK` error reply: the slot is served by (or, for `ASK`, being imported into) another node.
public struct RedisClusterRedirection: Sendable, Equatable {
    /// `MOVED`: the slot has a new owner, for good. `ASK`: this one command should be asked of another node.
    public enum Kind: Sendable, Equatable {
        case moved
        case ask
    }

    public let kind: Kind
    public let slot: HashSlot
    public let node: RedisNodeAddress

    /// Parses `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`; nil for any other error. An empty host
    /// (`MOVED 3999 :6381`, a node that does not know its own address) means the host of `sender`.
    public init?(_ message: String, sender: RedisNodeAddress? = nil) {
        let words = message.split(separator: " ")
        guard words.count == 3 else { return nil }
        switch words[0] {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        guard let number = Int(words[1]), let slot = HashSlot(rawValue: number),
            let colon = words[2].lastIndex(of: ":"), let port = Int(words[2][words[2].index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(words[2][..<colon])
        if host.isEmpty, let sender { host = sender.host }
        guard !host.isEmpty else { return nil }
        self.slot = slot
        self.node = RedisNodeAddress(host: host, port: port)
    }
}
