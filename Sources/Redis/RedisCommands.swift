/// What the engine asks of a Redis connection, whether it talks to one server (``RedisConnection``) or to a cluster
/// (``RedisClusterConnection``): so that code written against it can be given either.
///
/// Both are blocking, and serve one caller at a time: give each loop its own.
public protocol RedisCommands: AnyObject, Sendable {
    /// Where the connection goes (for a cluster: the seed node, with `cluster` set).
    var configuration: RedisConfiguration { get }

    /// Sends one command, returns its reply. A server error comes back as `.error`, not thrown.
    func send(_ arguments: [String]) throws(RedisError) -> RESPValue

    /// Sends one command and throws a server error reply.
    @discardableResult
    func call(_ arguments: [String]) throws(RedisError) -> RESPValue

    /// Sends the commands in pipelines; replies come back in the order of `commands`, server errors as `.error`.
    func pipeline(_ commands: [[String]]) throws(RedisError) -> [RESPValue]

    /// Runs a Lua script (`EVALSHA`, with the body sent when the server does not know it).
    func evalScript(_ source: String, keys: [String], arguments: [String]) throws(RedisError) -> RESPValue

    /// Runs one script many times in one pipeline (as `EVAL`), then `then`; replies in call order.
    func evalScriptPipelined(
        _ source: String, calls: [(keys: [String], arguments: [String])], then: [[String]]
    ) throws(RedisError) -> [RESPValue]

    /// Writes commands without reading their replies; ``receive(_:)`` reads them later, in order.
    func sendOnly(_ commands: [[String]]) throws(RedisError)

    /// Reads `count` replies of commands sent by ``sendOnly(_:)``.
    func receive(_ count: Int) throws(RedisError) -> [RESPValue]

    /// Deletes (`UNLINK`) every key matching `pattern`, by `SCAN`.
    func unlinkKeys(matching pattern: String) throws(RedisError)

    /// Drops the connection (every node's, for a cluster); the next call reconnects.
    func close()

    /// Whether the commands of one pipeline run in their order whatever their keys: true for one server; false for a
    /// cluster, where each node's share runs at once and only commands of one node keep their order. A caller whose
    /// later command must not run unless an earlier one (on another key) succeeded sends it in a later round trip.
    var ordersAcrossKeys: Bool { get }

    /// One `SCAN` step (`SCAN cursor MATCH pattern COUNT count`) over the keys of `key`'s slot's node: for a cluster,
    /// the master that serves `key`, so a pattern of one partition (`<prefix>:{p}:…`) sees all its keys; for one
    /// server, the server.
    func scan(cursor: String, matching pattern: String, count: Int, nodeOf key: String) throws(RedisError) -> RESPValue

    /// `WAIT replicas timeout` where this connection writes (for a cluster: on every master it has a connection
    /// to, one after another), and the fewest replicas that acknowledged. A server error is thrown.
    func waitForReplicas(_ replicas: Int, timeoutMilliseconds: Int) throws(RedisError) -> Int
}

extension RedisCommands {
    /// ``evalScriptPipelined(_:calls:then:)`` with nothing after the scripts.
    public func evalScriptPipelined(
        _ source: String, calls: [(keys: [String], arguments: [String])]
    ) throws(RedisError) -> [RESPValue] {
        try evalScriptPipelined(source, calls: calls, then: [])
    }
}

extension RedisConnection: RedisCommands {
    public var ordersAcrossKeys: Bool { true }

    public func scan(cursor: String, matching pattern: String, count: Int, nodeOf key: String) throws(RedisError)
        -> RESPValue
    {
        try call(["SCAN", cursor, "MATCH", pattern, "COUNT", String(count)])
    }

    public func waitForReplicas(_ replicas: Int, timeoutMilliseconds: Int) throws(RedisError) -> Int {
        try call(["WAIT", String(replicas), String(timeoutMilliseconds)]).int ?? 0
    }
}
