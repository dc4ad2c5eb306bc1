/// Errors of the Redis client. Errors the server returned are kept apart from our own (connection, protocol).
public struct RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Could not connect, or the connection broke (I/O error, timeout). The connection reconnects on next use.
        case connection
        /// The server answered with an error reply.
        case server
        /// A URL or argument we could not use.
        case configuration
        /// The reply was not of the shape the caller expected.
        case unexpectedReply
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The error code of a server error reply: its first word (`BUSY`, `OOM`, `NOSCRIPT`, …), after an `ERR `
    /// that Redis puts before a script's own error. Empty for errors that are not the server's.
    public var serverCode: String {
        guard kind == .server else { return "" }
        var words = message.split(separator: " ", maxSplits: 2)
        if words.first == "ERR", words.count > 1, words[1].allSatisfy({ $0.isUppercase }) { words.removeFirst() }
        return words.first.map(String.init) ?? ""
    }

    public var description: String {
        switch kind {
        case .connection: return "redis connection error: \(message)"
        case .server: return "redis server error: \(message)"
        case .configuration: return "redis configuration error: \(message)"
        case .unexpectedReply: return "unexpected redis reply: \(message)"
        }
    }
}
