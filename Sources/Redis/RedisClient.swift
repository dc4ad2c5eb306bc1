import Dispatch

/// The async face of a blocking connection (``RedisCommands``: one server's ``RedisConnection``, or a
/// ``RedisClusterConnection`` when the configuration says `cluster`): each call runs on the client's own serial
/// queue, so the blocking hiredis round trip never occupies a thread of Swift's cooperative pool.
public final class RedisClient: Sendable {
    public let connection: any RedisCommands
    private let queue: DispatchQueue

    public init(configuration: RedisConfiguration, label: String = "redis") {
        self.connection = configuration.makeConnection()
        self.queue = DispatchQueue(label: "dee.redis.\(label)")
    }

    public var configuration: RedisConfiguration { connection.configuration }

    /// Runs `body` with the blocking connection on the client's queue.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (any RedisCommands) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body(self.connection) })
            }
        }
    }

    /// One command; a server error comes back as `.error`.
    public func send(_ arguments: [String]) async throws -> RESPValue {
        try await withConnection { try $0.send(arguments) }
    }

    /// One command; a server error is thrown.
    @discardableResult
    public func call(_ arguments: [String]) async throws -> RESPValue {
        try await withConnection { try $0.call(arguments) }
    }

    public func pipeline(_ commands: [[String]]) async throws -> [RESPValue] {
        try await withConnection { try $0.pipeline(commands) }
    }

    public func evalScript(_ source: String, keys: [String], arguments: [String]) async throws -> RESPValue {
        try await withConnection { try $0.evalScript(source, keys: keys, arguments: arguments) }
    }

    public func close() {
        connection.close()
    }
}

extension RedisConfiguration {
    /// A blocking connection of the kind this configuration names: a ``RedisClusterConnection`` when `cluster` is
    /// set, else a ``RedisConnection``. (A cluster configuration with a database other than 0, which only the
    /// memberwise initializer can make, gets a ``RedisConnection``: its `SELECT` fails on a cluster node and says so.)
    public func makeConnection() -> any RedisCommands {
        if cluster, let c = try? RedisClusterConnection(configuration: self) { return c }
        return RedisConnection(configuration: self)
    }
}
