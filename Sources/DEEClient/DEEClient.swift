import Foundation
import Redis

/// A reply to a command (SPEC 5).
public struct DEEReply: Sendable {
    public let fields: [String: String]

    public var ok: Bool { fields["ok"] == "true" }
    public var requestId: String? { fields["requestId"] }
    public var commandId: String? { fields["commandId"] }
    /// The result JSON text (on success).
    public var result: String? { fields["result"] }
    /// The error code (on failure).
    public var error: String? { fields["error"] }
    public var message: String? { fields["message"] }
    public var field: String? { fields["field"] }
}

/// Sends commands to the engine's ingress stream and waits for their replies on a reply stream of its own.
/// Blocking; for producers, scripts and tests.
public final class DEEClient: @unchecked Sendable {
    public let redis: any RedisCommands
    public let prefix: String
    public let replyStream: String
    private var lastReply = "0-0"
    private var buffered: [String: DEEReply] = [:]

    public init(redis: any RedisCommands, prefix: String = "dee", replyStream: String? = nil) {
        self.redis = redis
        self.prefix = prefix
        self.replyStream = replyStream ?? "\(prefix):replies:\(UUID().uuidString)"
    }

    /// XADDs a command (fields as given) with this client's reply stream; returns its entry id.
    @discardableResult
    public func send(_ type: String, _ fields: [String: String] = [:], requestId: String? = nil, replyTo: Bool = true)
        throws -> String
    {
        var args = ["XADD", "\(prefix):commands", "*", "type", type]
        if let requestId { args += ["requestId", requestId] }
        if replyTo { args += ["replyTo", replyStream] }
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { args += [k, v] }
        guard let id = try redis.call(args).string else { throw RedisError(.unexpectedReply, "XADD gave no id") }
        return id
    }

    /// XADDs raw fields (for malformed commands).
    @discardableResult
    public func sendRaw(_ fields: [(String, String)]) throws -> String {
        try redis.call(["XADD", "\(prefix):commands", "*"] + fields.flatMap { [$0.0, $0.1] }).string ?? ""
    }

    /// Waits for the reply to the command with entry id `commandId`.
    public func reply(to commandId: String, timeout: Double = 30) throws -> DEEReply {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let r = buffered.removeValue(forKey: commandId) { return r }
            let reply = try redis.call(["XREAD", "COUNT", "1000", "BLOCK", "200", "STREAMS", replyStream, lastReply])
            guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { continue }
            for (id, fields) in first[1].streamEntries {
                lastReply = id
                if let c = fields["commandId"] { buffered[c] = DEEReply(fields: fields) }
            }
        }
        throw RedisError(.connection, "no reply to \(commandId) within \(timeout) s")
    }

    /// Sends a command and waits for its reply.
    public func call(_ type: String, _ fields: [String: String] = [:], requestId: String? = nil, timeout: Double = 30)
        throws -> DEEReply
    {
        try reply(to: try send(type, fields, requestId: requestId), timeout: timeout)
    }
}
