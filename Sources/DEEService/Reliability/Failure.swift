import DEECore
import Redis

/// Whether a failure is the entry's fault (it counts towards making the entry poison) or the environment's (a lost
/// connection, Redis busy loading, out of memory, a lost lease: retried, never counted). SPEC 9.
enum Failure: Equatable, Sendable {
    case transient
    case entry

    static func classify(_ error: any Error) -> Failure {
        if let e = error as? RedisError {
            switch e.kind {
            case .connection: return .transient
            case .server:
                if transientServerCodes.contains(e.serverCode) { return .transient }
                // A script's redis.call error carries the inner code inside its message.
                return transientPhrases.contains(where: e.message.contains) ? .transient : .entry
            case .configuration, .unexpectedReply: return .entry
            }
        }
        if error is Fenced { return .transient }
        return .entry
    }

    /// Throws the first reply that failed for a passing reason (OOM, a lost connection: it may succeed when sent
    /// again); a reply that can never be written (the replyTo key holds another type) is not retried.
    static func throwIfTransient(_ replies: [RESPValue]) throws {
        for reply in replies {
            if case .error(let e) = reply, Failure.classify(RedisError(.server, e)) == .transient {
                throw RedisError(.server, e)
            }
        }
    }

    /// Server error codes that say nothing about the command that met them.
    static let transientServerCodes: Set<String> = [
        "BUSY", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "OOM", "NOREPLICAS", "READONLY", "MOVED", "ASK",
        "NOSCRIPT",
    ]
    static let transientPhrases = ["OOM command not allowed", "BUSY Redis is busy", "LOADING Redis is loading", "-READONLY"]
}

/// A write refused by a fence: another process holds the lease now.
struct Fenced: Error, CustomStringConvertible {
    var description: String { "fenced: another process holds the lease" }
}

/// What to do with an entry about to be attempted on its own, given the attempts counted in Redis (this one
/// included): attempt it, or give up on it as poison.
enum AttemptDecision: Equatable, Sendable {
    case attempt
    case poison

    static func decide(attempts: Int, maxAttempts: Int) -> AttemptDecision {
        attempts > maxAttempts ? .poison : .attempt
    }
}
