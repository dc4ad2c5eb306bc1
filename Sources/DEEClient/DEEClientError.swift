import DEECore
import Redis

/// Why a call of ``DEEEngine`` failed: the engine's own answer (`ok: false`, with its SPEC 5 code, field and
/// message) is kept apart from what went wrong on the way (no reply in time, Redis unreachable, a reply we cannot
/// read, the call cancelled).
public struct DEEClientError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Kind: Sendable {
        /// The engine answered `ok: false`; ``DEEClientError/code`` is its SPEC 5 error code.
        case command
        /// No reply arrived within the call's timeout (after every attempt). The engine may not be running.
        case timeout
        /// Redis could not be reached, or the connection kept breaking until the call's time ran out.
        case unreachable
        /// A reply (or a result) that is not what SPEC 5 and 6 describe.
        case protocolError
        /// The calling task was cancelled, or the client closed, before the reply arrived.
        case cancelled
    }

    /// What kind of failure this is.
    public let kind: Kind
    /// The SPEC 5 error code (`not_found`, `bad_request`, …) when ``kind`` is `.command`; nil otherwise.
    public let code: String?
    /// The argument or plan path at fault (`contact.id`, `steps[3].onTimeout`), when the engine named one.
    public let field: String?
    /// What happened, for people.
    public let message: String
    /// The requestId the command was published with, when it was published.
    public let requestId: String?

    /// Makes an error; the engine's own answers have kind `.command` and a code.
    public init(
        _ kind: Kind, _ message: String, code: String? = nil, field: String? = nil, requestId: String? = nil
    ) {
        self.kind = kind
        self.code = code
        self.field = field
        self.message = message
        self.requestId = requestId
    }

    /// The code as DEECore's ``ErrorCode``, when it is one of SPEC 5's.
    public var errorCode: ErrorCode? { code.flatMap(ErrorCode.init(rawValue:)) }

    /// `not_found: no run …`, `timeout: …`: the code (or kind) first, so a person can act on it.
    public var description: String {
        var text: String
        switch kind {
        case .command: text = "\(code ?? "error"): \(message)"
        case .timeout: text = "timeout: \(message)"
        case .unreachable: text = "redis unreachable: \(message)"
        case .protocolError: text = "protocol error: \(message)"
        case .cancelled: text = "cancelled: \(message)"
        }
        if let field, kind == .command, !message.hasPrefix(field) { text += " (field \(field))" }
        return text
    }

    static func unreachable(_ error: RedisError, requestId: String? = nil) -> DEEClientError {
        DEEClientError(.unreachable, error.message, requestId: requestId)
    }
}
