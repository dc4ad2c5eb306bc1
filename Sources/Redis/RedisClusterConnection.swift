import Foundation

/// A blocking client of a Redis Cluster: each command goes to the master that serves its key's slot.
///
/// It holds the slot map (from `CLUSTER SHARDS`, or `CLUSTER SLOTS` on servers without it) and one
/// ``RedisConnection`` per master, opened on first use. The map is discovered on the first call and again after a
/// `MOVED` reply, after a failure to connect to a node, after `CLUSTERDOWN`, and on ``refreshSlotMap()``.
///
/// - `MOVED slot node`: the map is updated (the slot, then the whole map as `node` sees it) and the command sent to
///   `node`.
/// - `ASK slot node`: `ASKING` and the command are sent to `node`, once, and the map is left alone (the slot is
///   being migrated; it is still the old owner's).
/// - `TRYAGAIN` (a multi-key command during a migration), `CLUSTERDOWN` (a failover in progress): retried after a
///   short backoff (``Options``).
/// Every retry is bounded; once the bound is reached, the last error reply is the command's reply. A connection
/// that breaks after a command was sent is not retried, since what ran is unknown: the ``RedisError/Kind/connection``
/// error is thrown, as ``RedisConnection`` does, and the map is discovered again before the next call.
///
/// Thread rules as ``RedisConnection``: every call holds the connection's lock for its whole round trip, so it serves
/// one caller at a time; give each loop its own. ``sendOnly(_:)`` and ``receive(_:)``: see there.
public final class RedisClusterConnection: RedisCommands, @unchecked Sendable {
    /// Bounds on following redirections and retrying.
    public struct Options: Sendable, Equatable {
        /// Rounds of redirections and retries per call, beyond the first attempt.
        public var maxRetries: Int
        /// The first wait before retrying `TRYAGAIN`, `CLUSTERDOWN` or a node that could not be reached; doubled each
        /// time, up to ``maxBackoffSeconds``.
        public var backoffSeconds: Double
        public var maxBackoffSeconds: Double

        /// With the defaults (8 retries, 50 ms doubling to 1 s) a call gives up after about 4.5 s of waiting, which
        /// covers a manual failover but not always an automatic one (`cluster-node-timeout` plus an election):
        /// callers retry transient errors at their own level.
        public init(maxRetries: Int = 8, backoffSeconds: Double = 0.05, maxBackoffSeconds: Double = 1) {
            self.maxRetries = maxRetries
            self.backoffSeconds = backoffSeconds
            self.maxBackoffSeconds = maxBackoffSeconds
        }
    }

    /// The seed node's configuration, with `cluster` set. Every node is reached with its user, password and timeout.
    public let configuration: RedisConfiguration
    public let options: Options
    private let lock = NSLock()
    // Guarded by `lock`.
    private var map: RedisClusterSlotMap?
    private var mapIsStale = true
    private var nodes: [RedisNodeAddress: RedisConnection] = [:]
    private var seeds: [RedisNodeAddress]
    /// Commands written by `sendOnly` whose replies are not read yet, and the node they went to.
    private var outstanding: [[String]] = []
    private var outstandingNode: RedisNodeAddress?
    /// Replies of outstanding commands read ahead of `receive` (to free the node's connection for a retry).
    private var readAhead: [RESPValue] = []
    private var shardsUnsupported = false
    /// Counts the times the set of masters changed under this client (a discovery with other masters, a node it
    /// could not reach) and the count at the last ``waitForReplicas(_:timeoutMilliseconds:)``: a change between two
    /// WAITs means writes may have gone to a connection that no longer exists, which no WAIT can vouch for.
    private var nodeChanges = 0
    private var nodeChangesAtLastWait = 0

    /// A client of the cluster that `configuration` names one node of. Throws a configuration error when it names a
    /// database other than 0 (a cluster has no other). Connects on first use.
    public init(configuration: RedisConfiguration, options: Options = Options()) throws(RedisError) {
        guard configuration.database == 0 else {
            throw RedisError(
                .configuration,
                "a Redis Cluster has database 0 only (the configuration asks for database \(configuration.database))")
        }
        var configuration = configuration
        configuration.cluster = true
        self.configuration = configuration
        self.options = options
        self.seeds = [RedisNodeAddress(host: configuration.host, port: configuration.port)]
    }

    deinit {
        for connection in nodes.values { connection.close() }
    }

    /// Whether the server `configuration` names runs in cluster mode (`INFO cluster` says `cluster_enabled:1`).
    public static func isClusterEnabled(_ configuration: RedisConfiguration) throws(RedisError) -> Bool {
        var single = configuration
        single.database = 0
        single.cluster = false
        let connection = RedisConnection(configuration: single)
        defer { connection.close() }
        let info = try connection.call(["INFO", "cluster"]).string ?? ""
        return info.split(whereSeparator: \.isNewline).contains { $0.hasPrefix("cluster_enabled:1") }
    }

    // MARK: - Public calls

    /// Sends one command to the master of its key's slot (any node for a command without a key, every master for
    /// `SCRIPT LOAD`/`SCRIPT FLUSH`/`FLUSHALL`/`FLUSHDB`, whose reply is the first master's, or the first error).
    /// A server error comes back as `.error`.
    public func send(_ arguments: [String]) throws(RedisError) -> RESPValue {
        try pipeline([arguments])[0]
    }

    /// ``send(_:)``, throwing a server error reply (`CROSSSLOT`, …) as a ``RedisError`` of kind `.server`.
    @discardableResult
    public func call(_ arguments: [String]) throws(RedisError) -> RESPValue {
        let reply = try send(arguments)
        if case .error(let message) = reply { throw RedisError(.server, message) }
        return reply
    }

    /// Splits the commands by node (by the slot of each one's key; see ``RedisClusterRoute``), sends one pipeline
    /// to each node (all written before any is read, so the nodes work at once), and puts the replies back in the
    /// order of `commands`. Commands of one slot reach their node in their order.
    ///
    /// When the server redirects some commands (`MOVED`, `ASK`, `TRYAGAIN`), only those are sent again, in their
    /// order; they then run after the commands of the same pipeline that were not redirected. Within one slot that
    /// can reorder only during a migration of that slot, and only around `TRYAGAIN` (keys of one command partly
    /// moved) and `ASK` (a key already moved).
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RESPValue] {
        lock.lock()
        defer { lock.unlock() }
        try requireNothingOutstanding()
        return try runLocked(commands)
    }

    /// Runs a Lua script on the master of `keys[0]`'s slot (any node when there are no keys) by `EVALSHA`, loading
    /// it there first when that node's connection has not yet, with ``RedisConnection``'s `NOSCRIPT` fallback: a
    /// node that never saw the script (a new master after a failover, a `SCRIPT FLUSH`) is sent the body. After an
    /// `ASK`, the body is sent (`ASKING` must come right before the script, so no `SCRIPT LOAD` in between).
    public func evalScript(_ source: String, keys: [String], arguments: [String]) throws(RedisError) -> RESPValue {
        lock.lock()
        defer { lock.unlock() }
        try requireNothingOutstanding()
        let route: RedisClusterRoute = keys.first.map { .slot(HashSlot(key: $0)) } ?? .anyNode
        var ask: RedisNodeAddress?
        var attempt = 0
        while true {
            let target: RedisNodeAddress
            do {
                if let ask { target = ask } else { target = try node(for: route, anchor: nil) }
            } catch {
                if attempt >= options.maxRetries { throw error }
                pause(attempt, rediscover: true)
                attempt += 1
                continue
            }
            let connection: RedisConnection
            do {
                connection = try connect(target)
            } catch {
                if attempt >= options.maxRetries { throw error }
                pause(attempt, rediscover: true)
                attempt += 1
                continue
            }
            let reply: RESPValue
            do {
                if ask != nil {
                    let command = RedisConnection.evalCommands(source, [(keys, arguments)])[0]
                    reply = try connection.pipeline([["ASKING"], command])[1]
                } else {
                    reply = try connection.evalScript(source, keys: keys, arguments: arguments)
                }
            } catch {
                mapIsStale = true
                throw error
            }
            let action = Self.action(for: reply, from: target)
            if action == .done || attempt >= options.maxRetries { return reply }
            ask = nil
            switch action {
            case .done: return reply
            case .moved(let redirection): followMoved([redirection])
            case .ask(let node): ask = node
            case .tryAgain(let rediscover): pause(attempt, rediscover: rediscover)
            }
            attempt += 1
        }
    }

    /// Runs one script many times, then `then`, in per-node pipelines (each call by its first key's slot, each of
    /// `then` by its own key); replies in call order, then `then`'s. As `EVAL` with the body, never `EVALSHA` (see
    /// ``RedisConnection/evalScriptPipelined(_:calls:then:)``), so a node that never saw the script runs it too.
    /// `then` sees the scripts' writes when its keys are in their slot.
    public func evalScriptPipelined(
        _ source: String, calls: [(keys: [String], arguments: [String])], then: [[String]] = []
    ) throws(RedisError) -> [RESPValue] {
        try pipeline(RedisConnection.evalCommands(source, calls) + then)
    }

    /// Writes commands to one node without reading their replies; ``receive(_:)`` reads them later, in order.
    ///
    /// The rule on a cluster: every command of one `sendOnly`, and of every `sendOnly` until all their replies are
    /// received, must be in one slot (a partition's keys share one hash tag, so its owner's commands are); commands
    /// without a key go along. Anything else throws a configuration error before anything is sent. While replies are
    /// outstanding only ``receive(_:)`` and ``close()`` may be called (others throw), and a caller that gives up must
    /// ``close()``. A redirected reply (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`) is resolved inside `receive` by
    /// sending that command again (see ``pipeline(_:)`` for the order that gives).
    public func sendOnly(_ commands: [[String]]) throws(RedisError) {
        lock.lock()
        defer { lock.unlock() }
        var slot: HashSlot?
        for command in commands + outstanding {
            guard case .slot(let next) = RedisClusterRoute.of(command) else { continue }
            if let slot, slot != next {
                throw RedisError(
                    .configuration,
                    "sendOnly on a cluster takes commands of one slot only (got slots \(slot) and \(next): "
                        + "\(command.first ?? "")); use pipeline for commands of several slots")
            }
            slot = next
        }
        let target: RedisNodeAddress
        if let outstandingNode {
            target = outstandingNode
        } else {
            var attempt = 0
            while true {
                do {
                    let node = try node(for: slot.map { .slot($0) } ?? .anyNode, anchor: nil)
                    _ = try connect(node)
                    target = node
                    break
                } catch {
                    if attempt >= options.maxRetries { throw error }
                    pause(attempt, rediscover: true)
                    attempt += 1
                }
            }
        }
        do {
            try connection(to: target).sendOnly(commands)
        } catch {
            dropOutstanding()
            mapIsStale = true
            throw error
        }
        outstanding += commands
        outstandingNode = target
    }

    /// Reads the replies of the next `count` commands sent by ``sendOnly(_:)``, following redirections.
    public func receive(_ count: Int) throws(RedisError) -> [RESPValue] {
        lock.lock()
        defer { lock.unlock() }
        guard count <= outstanding.count, let node = outstandingNode else {
            throw RedisError(
                .configuration, "receive(\(count)) with \(outstanding.count) replies outstanding on the cluster")
        }
        let connection = connection(to: node)
        var replies = Array(readAhead.prefix(count))
        readAhead.removeFirst(replies.count)
        do {
            if replies.count < count { replies += try connection.receive(count - replies.count) }
        } catch {
            dropOutstanding()
            mapIsStale = true
            throw error
        }
        let commands = Array(outstanding.prefix(count))
        outstanding.removeFirst(count)
        let redirected = replies.indices.filter { Self.action(for: replies[$0], from: node) != .done }
        if !redirected.isEmpty {
            // The node's connection still has replies to come: read them first, so the retries may use it.
            if outstanding.count > readAhead.count {
                do {
                    readAhead += try connection.receive(outstanding.count - readAhead.count)
                } catch {
                    dropOutstanding()
                    mapIsStale = true
                    throw error
                }
            }
            let retried = try runLocked(
                redirected.map { commands[$0] }, firstReplies: redirected.map { replies[$0] },
                from: node)
            for (index, reply) in zip(redirected, retried) { replies[index] = reply }
        }
        if outstanding.isEmpty {
            outstandingNode = nil
            readAhead = []
        }
        return replies
    }

    /// Deletes (`UNLINK`) every key matching `pattern` on every master, by `SCAN` (each key alone, so keys of
    /// different slots never meet in one command).
    public func unlinkKeys(matching pattern: String) throws(RedisError) {
        let masters: [RedisNodeAddress]
        do {
            lock.lock()
            defer { lock.unlock() }
            try requireNothingOutstanding()
            masters = try currentMap().masters
        }
        for master in masters {
            var cursor = "0"
            repeat {
                let scan = ["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]
                let reply = try onNode(master) { (node: RedisConnection) throws(RedisError) in try node.call(scan) }
                let parts = reply.array ?? []
                cursor = parts.first?.string ?? "0"
                let keys = (parts.count > 1 ? parts[1].array ?? [] : []).compactMap(\.string)
                if !keys.isEmpty {
                    for reply in try pipeline(keys.map { ["UNLINK", $0] }) {
                        if case .error(let message) = reply { throw RedisError(.server, message) }
                    }
                }
            } while cursor != "0"
        }
    }

    /// False: each node's share of a pipeline runs at once, so only commands of one node keep their order.
    public var ordersAcrossKeys: Bool { false }

    /// `SCAN` on the master that serves `key`'s slot (no redirection followed: a slot that moves meanwhile is
    /// scanned where it was).
    public func scan(cursor: String, matching pattern: String, count: Int, nodeOf key: String) throws(RedisError)
        -> RESPValue
    {
        let command = ["SCAN", cursor, "MATCH", pattern, "COUNT", String(count)]
        guard let node = try node(forKey: key) else {
            throw RedisError(.server, "CLUSTERDOWN no master serves the slot of \(key)")
        }
        return try onNode(node) { (c: RedisConnection) throws(RedisError) in try c.call(command) }
    }

    /// `WAIT` on every master this client has a connection to (the nodes its writes went to), one after another;
    /// returns the fewest replicas any of them counted (`replicas` when it has no connection yet). When the masters
    /// changed since the last call (a failover, a node unreachable), 0: what a connection that is gone took, the
    /// new master has or not, and WAIT cannot tell (docs/RELIABILITY.md "Replicas"), so the caller does it again.
    /// Every master needs a replica: one without makes every WAIT of a loop that touched it fall short.
    public func waitForReplicas(_ replicas: Int, timeoutMilliseconds: Int) throws(RedisError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        try requireNothingOutstanding()
        // The masters changed since the last WAIT: what went to a connection now gone is not covered. Say none
        // acknowledged (the caller replies nothing and does it all again, on the connections there are now).
        if nodeChanges != nodeChangesAtLastWait {
            nodeChangesAtLastWait = nodeChanges
            return 0
        }
        let masters = Set(try currentMap().masters)
        var fewest: Int?
        for (address, connection) in nodes where masters.contains(address) {
            let count = try connection.call(["WAIT", String(replicas), String(timeoutMilliseconds)]).int ?? 0
            fewest = min(fewest ?? count, count)
        }
        return fewest ?? replicas
    }

    /// Drops every node's connection and any outstanding replies; the next call reconnects.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        dropOutstanding()
        for connection in nodes.values { connection.close() }
    }

    // MARK: - The map

    /// Discovers the slot map again now, from the known nodes (masters first, then replicas, then the seed).
    public func refreshSlotMap() throws(RedisError) {
        lock.lock()
        defer { lock.unlock() }
        try discoverLocked(preferring: nil)
    }

    /// The slot map as last discovered (discovering it first if there is none yet).
    public func slotMap() throws(RedisError) -> RedisClusterSlotMap {
        lock.lock()
        defer { lock.unlock() }
        return try currentMap()
    }

    /// The master that serves `key`'s slot, as the map says.
    public func node(forKey key: String) throws(RedisError) -> RedisNodeAddress? {
        try slotMap().node(for: HashSlot(key: key))
    }

    /// Runs `body` with the connection to one node (for commands addressed to a node rather than a key: `SCAN`,
    /// `INFO`, `CLUSTER …`, `SCRIPT FLUSH` on one node). No redirection is followed.
    public func onNode<T>(
        _ node: RedisNodeAddress, _ body: (RedisConnection) throws(RedisError) -> T
    ) throws(RedisError) -> T {
        lock.lock()
        defer { lock.unlock() }
        try requireNothingOutstanding()
        return try body(connection(to: node))
    }

    // MARK: - Private (called with `lock` held)

    private enum Action: Equatable {
        case done
        case moved(RedisClusterRedirection)
        case ask(RedisNodeAddress)
        case tryAgain(rediscover: Bool)
    }

    private static func action(for reply: RESPValue, from node: RedisNodeAddress) -> Action {
        guard case .error(let message) = reply else { return .done }
        if let redirection = RedisClusterRedirection(message, sender: node) {
            return redirection.kind == .moved ? .moved(redirection) : .ask(redirection.node)
        }
        switch RedisError(.server, message).serverCode {
        case "TRYAGAIN": return .tryAgain(rediscover: false)
        case "CLUSTERDOWN": return .tryAgain(rediscover: true)
        default: return .done
        }
    }

    /// One command of a pipeline still to be answered.
    private struct Job {
        var index: Int
        var route: RedisClusterRoute
        /// For a command without a key: the index of the keyed command it travels with.
        var anchor: Int?
        var ask: RedisNodeAddress?
    }

    /// The pipeline machinery. With `firstReplies` (from `receive`), those are the replies of a first attempt on
    /// `from`, and the loop starts by acting on them.
    private func runLocked(
        _ commands: [[String]], firstReplies: [RESPValue]? = nil, from: RedisNodeAddress? = nil
    ) throws(RedisError) -> [RESPValue] {
        if commands.isEmpty { return [] }
        let routes = commands.map(RedisClusterRoute.of)
        let keyed = routes.indices.filter { if case .slot = routes[$0] { return true } else { return false } }
        var replies = [RESPValue?](repeating: nil, count: commands.count)
        var jobs: [Job] = routes.indices.map { index in
            var anchor: Int?
            if case .anyNode = routes[index] { anchor = keyed.last { $0 < index } ?? keyed.first { $0 > index } }
            return Job(index: index, route: routes[index], anchor: anchor)
        }
        // Where each keyed command last went, for the keyless ones that travel with it.
        var sentTo: [Int: RedisNodeAddress] = [:]
        var attempt = 0
        var answered: [Answer] = []
        if let firstReplies, let from {
            answered = zip(jobs, firstReplies).map { Answer(job: $0, reply: $1, node: from) }
            jobs = []
        }
        while true {
            var rediscover = false
            if !jobs.isEmpty {
                let round = try sendRound(jobs, commands, &sentTo)
                answered = round.answered
                if let unreachable = round.unreachable {
                    if attempt >= options.maxRetries { throw unreachable }
                    let done = Set(answered.map(\.job.index))
                    jobs = jobs.filter { !done.contains($0.index) }
                    rediscover = true
                } else {
                    jobs = []
                }
            }
            // Settle the answered commands; queue the redirected ones for another round.
            var moved: [RedisClusterRedirection] = []
            var wait = false
            for answer in answered {
                let action = Self.action(for: answer.reply, from: answer.node)
                if action == .done || attempt >= options.maxRetries || answer.job.route == .everyMaster {
                    replies[answer.job.index] = answer.reply
                    continue
                }
                var retry = answer.job
                retry.ask = nil
                switch action {
                case .done: break
                case .moved(let redirection): moved.append(redirection)
                case .ask(let target): retry.ask = target
                case .tryAgain(let again):
                    wait = true
                    rediscover = rediscover || again
                }
                jobs.append(retry)
            }
            answered = []
            if jobs.isEmpty { break }
            jobs.sort { $0.index < $1.index }
            if !moved.isEmpty { followMoved(moved) }
            if wait || rediscover { pause(attempt, rediscover: rediscover) }
            attempt += 1
        }
        var out: [RESPValue] = []
        out.reserveCapacity(commands.count)
        for reply in replies { out.append(reply ?? .null) }
        return out
    }

    private struct Answer {
        var job: Job
        var reply: RESPValue
        var node: RedisNodeAddress
    }

    /// Sends every job to its node: all pipelines written first, then all read. Jobs for a node that could not be
    /// reached (nothing was sent there), or whose slot has no master, are left out of the answers, with the error; an
    /// I/O error after sending throws (the other nodes' unread replies are dropped with their connections).
    private func sendRound(
        _ jobs: [Job], _ commands: [[String]], _ sentTo: inout [Int: RedisNodeAddress]
    ) throws(RedisError) -> (answered: [Answer], unreachable: RedisError?) {
        let map: RedisClusterSlotMap
        do {
            map = try currentMap()
        } catch {
            return ([], error)
        }
        var groups: [RedisNodeAddress: [Job]] = [:]
        var order: [RedisNodeAddress] = []
        var unreachable: RedisError?
        func add(_ job: Job, _ node: RedisNodeAddress) {
            if groups[node] == nil { order.append(node) }
            groups[node, default: []].append(job)
        }
        // Keyed commands first, so that the keyless ones know where their anchors go; then each node's share in
        // the pipeline's order.
        var targets: [Int: RedisNodeAddress] = [:]
        for job in jobs {
            guard case .slot(let slot) = job.route else { continue }
            if let target = job.ask ?? map.node(for: slot) {
                targets[job.index] = target
                sentTo[job.index] = target
            } else {
                unreachable = RedisError(.connection, "no master serves slot \(slot) (the cluster is down or changing)")
            }
        }
        for job in jobs {
            switch job.route {
            case .slot:
                if let target = targets[job.index] { add(job, target) }
            case .everyMaster:
                for master in map.masters { add(job, master) }
            case .anyNode:
                if let target = job.ask ?? job.anchor.flatMap({ sentTo[$0] }) ?? map.masters.first {
                    add(job, target)
                }
            }
        }
        for node in order { groups[node]?.sort { $0.index < $1.index } }
        var sent: [(node: RedisNodeAddress, jobs: [Job], count: Int)] = []
        for node in order {
            guard let group = groups[node] else { continue }
            let connection: RedisConnection
            do {
                connection = try connect(node)
            } catch {
                unreachable = error
                continue
            }
            var wire: [[String]] = []
            wire.reserveCapacity(group.count)
            for job in group {
                if job.ask != nil { wire.append(["ASKING"]) }
                wire.append(commands[job.index])
            }
            do {
                try connection.sendOnly(wire)
            } catch {
                for other in sent { self.connection(to: other.node).close() }
                mapIsStale = true
                throw error
            }
            sent.append((node, group, wire.count))
        }
        var answered: [Answer] = []
        answered.reserveCapacity(jobs.count)
        var broadcast: [Int: Answer] = [:]
        for (position, share) in sent.enumerated() {
            let raw: [RESPValue]
            do {
                raw = try connection(to: share.node).receive(share.count)
            } catch {
                for other in sent[(position + 1)...] { connection(to: other.node).close() }
                mapIsStale = true
                throw error
            }
            var next = 0
            for job in share.jobs {
                if job.ask != nil { next += 1 }
                let answer = Answer(job: job, reply: raw[next], node: share.node)
                next += 1
                if job.route == .everyMaster {
                    // The first error wins; else the first master's reply.
                    if let earlier = broadcast[job.index], earlier.reply.isError || !answer.reply.isError { continue }
                    broadcast[job.index] = answer
                    continue
                }
                answered.append(answer)
            }
        }
        answered += broadcast.values
        if unreachable != nil { mapIsStale = true }
        return (answered, unreachable)
    }

    /// The node a command goes to: its slot's master, or for a keyless one its anchor's node, else any master.
    private func node(for route: RedisClusterRoute, anchor: RedisNodeAddress?) throws(RedisError) -> RedisNodeAddress {
        let map = try currentMap()
        switch route {
        case .slot(let slot):
            guard let node = map.node(for: slot) else {
                mapIsStale = true
                throw RedisError(.connection, "no master serves slot \(slot) (the cluster is down or being set up)")
            }
            return node
        case .anyNode, .everyMaster:
            if let anchor { return anchor }
            guard let node = map.masters.first else {
                mapIsStale = true
                throw RedisError(.connection, "the cluster has no master that serves a slot")
            }
            return node
        }
    }

    private func currentMap() throws(RedisError) -> RedisClusterSlotMap {
        if mapIsStale || map == nil { try discoverLocked(preferring: nil) }
        guard let map else { throw RedisError(.connection, "no slot map") }
        return map
    }

    /// `MOVED`: each redirecting node is right about its slot; the node named first has the newest view of the rest.
    /// One discovery for the lot, however many commands were redirected.
    private func followMoved(_ redirections: [RedisClusterRedirection]) {
        guard let first = redirections.first else { return }
        _ = try? discoverLocked(preferring: first.node)
        // A node that has not heard of a move yet may have answered: the redirections stand.
        for redirection in redirections where map?.node(for: redirection.slot) != redirection.node {
            map?.assign(redirection.slot, to: redirection.node)
        }
    }

    /// Asks the nodes in turn (`preferring` first, then the masters, the other known nodes and the seed) for the map;
    /// the first answer wins. Connections to nodes that are no longer masters are closed.
    private func discoverLocked(preferring: RedisNodeAddress?) throws(RedisError) {
        var candidates: [RedisNodeAddress] = []
        for node in [preferring].compactMap({ $0 }) + (map?.masters ?? []) + (map?.knownNodes ?? []) + seeds
        where !candidates.contains(node) {
            candidates.append(node)
        }
        var failures: [String] = []
        for node in candidates {
            do {
                let discovered = try querySlotMap(node)
                guard discovered.coveredSlots > 0 else {
                    failures.append("\(node): serves no slot yet")
                    continue
                }
                if let previous = map, previous.masters != discovered.masters { nodeChanges += 1 }
                map = discovered
                mapIsStale = false
                seeds = Array(Set(seeds + discovered.knownNodes)).sorted()
                for (address, connection) in nodes
                where !discovered.masters.contains(address) && address != outstandingNode {
                    connection.close()
                    nodes[address] = nil
                }
                return
            } catch {
                if error.kind == .configuration { throw error }
                failures.append("\(node): \(error.message)")
            }
        }
        mapIsStale = true
        throw RedisError(.connection, "cannot discover the cluster's slot map: " + failures.joined(separator: "; "))
    }

    /// Asks one node for the map, over a connection of its own (closed after): a pooled connection to a node that
    /// just failed would first wait out its reconnect backoff, and discovery tries dead nodes on its way.
    private func querySlotMap(_ node: RedisNodeAddress) throws(RedisError) -> RedisClusterSlotMap {
        let connection = RedisConnection(configuration: nodeConfiguration(node))
        defer { connection.close() }
        if !shardsUnsupported {
            let reply = try connection.send(["CLUSTER", "SHARDS"])
            if case .error(let message) = reply {
                if message.contains("cluster support disabled") {
                    throw RedisError(.configuration, "\(node) is not in cluster mode (\(message))")
                }
                shardsUnsupported = true
            } else {
                return try RedisClusterSlotMap(shardsReply: reply, queried: node)
            }
        }
        let reply = try connection.send(["CLUSTER", "SLOTS"])
        if case .error(let message) = reply {
            if message.contains("cluster support disabled") {
                throw RedisError(.configuration, "\(node) is not in cluster mode (\(message))")
            }
            throw RedisError(.server, message)
        }
        return try RedisClusterSlotMap(slotsReply: reply, queried: node)
    }

    private func connection(to node: RedisNodeAddress) -> RedisConnection {
        if let existing = nodes[node] { return existing }
        let connection = RedisConnection(configuration: nodeConfiguration(node))
        nodes[node] = connection
        return connection
    }

    /// Connects to `node` if not connected. On failure its connection is dropped, so that the next attempt is paced
    /// by this client's backoff alone, not also by the node connection's reconnect backoff.
    private func connect(_ node: RedisNodeAddress) throws(RedisError) -> RedisConnection {
        let connection = connection(to: node)
        do {
            try connection.connect()
        } catch {
            connection.close()
            nodes[node] = nil
            nodeChanges += 1
            throw error
        }
        return connection
    }

    private func nodeConfiguration(_ node: RedisNodeAddress) -> RedisConfiguration {
        var nodeConfiguration = configuration
        nodeConfiguration.host = node.host
        nodeConfiguration.port = node.port
        nodeConfiguration.cluster = false
        return nodeConfiguration
    }

    /// Waits the backoff of `attempt`, then discovers the map again when asked to (a failure to do so is left to the
    /// next round, which retries or gives up).
    private func pause(_ attempt: Int, rediscover: Bool) {
        let wait = min(options.backoffSeconds * Double(1 << min(attempt, 20)), options.maxBackoffSeconds)
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        if rediscover {
            mapIsStale = true
            _ = try? discoverLocked(preferring: nil)
        }
    }

    private func requireNothingOutstanding() throws(RedisError) {
        guard outstanding.isEmpty else {
            throw RedisError(
                .configuration,
                "\(outstanding.count) replies of sendOnly are outstanding: receive them (or close) before other calls")
        }
    }

    private func dropOutstanding() {
        if let outstandingNode, !outstanding.isEmpty { nodes[outstandingNode]?.close() }
        outstanding = []
        outstandingNode = nil
        readAhead = []
    }
}

extension RESPValue {
    /// Whether this is an error reply.
    public var isError: Bool {
        if case .error = self { return true }
        return false
    }
}
