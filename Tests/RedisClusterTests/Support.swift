import DEETestSupport
import Foundation
import Redis
import Testing

/// Why a cluster test could not go on.
struct ClusterTestError: Error, CustomStringConvertible {
    let description: String
}

/// Helpers for tests against the shared test cluster.
enum ClusterSupport {
    static func cluster() throws -> TestCluster { try TestCluster.shared() }

    /// A fresh cluster client seeded with the first node.
    static func client(_ cluster: TestCluster) throws -> RedisClusterConnection {
        try RedisClusterConnection(configuration: RedisConfiguration(url: cluster.url))
    }

    /// A plain connection to one node, that follows no redirection (an operator's `redis-cli` without `-c`).
    static func admin(_ node: RedisNodeAddress) -> RedisConnection {
        RedisConnection(configuration: RedisConfiguration(host: node.host, port: node.port))
    }

    static func admin(_ port: UInt16) -> RedisConnection {
        admin(RedisNodeAddress(host: "127.0.0.1", port: Int(port)))
    }

    static func nodeID(_ node: RedisNodeAddress) throws -> String {
        let connection = admin(node)
        defer { connection.close() }
        return try #require(try connection.call(["CLUSTER", "MYID"]).string)
    }

    /// `count` keys under `prefix`, each in a slot of its own, whose slots `node` serves.
    static func keys(_ prefix: String, on node: RedisNodeAddress, in map: RedisClusterSlotMap, count: Int) -> [String] {
        var keys: [String] = []
        var i = 0
        while keys.count < count {
            let key = "\(prefix):{\(i)}"
            if map.node(for: HashSlot(key: key)) == node { keys.append(key) }
            i += 1
        }
        return keys
    }

    /// The replica of `master` (by `ROLE` on every node of the cluster).
    static func replica(of master: RedisNodeAddress, in cluster: TestCluster) throws -> RedisNodeAddress {
        for port in cluster.ports where cluster.isRunning(port) {
            let connection = admin(port)
            defer { connection.close() }
            let role = try connection.call(["ROLE"]).array ?? []
            if role.first?.string == "slave", role.count > 2, role[2].int == master.port {
                return RedisNodeAddress(host: "127.0.0.1", port: Int(port))
            }
        }
        throw ClusterTestError(description: "no replica of \(master) found")
    }

    static func role(_ node: RedisNodeAddress) -> String? {
        let connection = admin(node)
        defer { connection.close() }
        return (try? connection.call(["ROLE"]))?.array?.first?.string
    }

    /// Starts moving `slot` from `source` to `target`, as `redis-cli --cluster reshard` does: IMPORTING on the
    /// target, MIGRATING on the source.
    static func beginMigration(_ slot: HashSlot, from source: RedisNodeAddress, to target: RedisNodeAddress) throws {
        let sourceID = try nodeID(source)
        let targetID = try nodeID(target)
        let t = admin(target)
        let s = admin(source)
        defer {
            t.close()
            s.close()
        }
        try t.call(["CLUSTER", "SETSLOT", String(slot.rawValue), "IMPORTING", sourceID])
        try s.call(["CLUSTER", "SETSLOT", String(slot.rawValue), "MIGRATING", targetID])
    }

    /// `MIGRATE`s `keys` (all of the slot's keys when nil) from `source` to `target`.
    static func migrateKeys(
        _ slot: HashSlot, from source: RedisNodeAddress, to target: RedisNodeAddress, keys: [String]? = nil
    ) throws {
        let s = admin(source)
        defer { s.close() }
        let moving =
            try keys
            ?? (s.call(["CLUSTER", "GETKEYSINSLOT", String(slot.rawValue), "1000"]).array ?? []).compactMap(\.string)
        if moving.isEmpty { return }
        try s.call(["MIGRATE", target.host, String(target.port), "", "0", "5000", "KEYS"] + moving)
    }

    /// Gives `slot` to `target` on every master (target first, then the source, as the cluster tutorial says).
    static func finishMigration(_ slot: HashSlot, to target: RedisNodeAddress, masters: [RedisNodeAddress]) throws {
        let targetID = try nodeID(target)
        for node in [target] + masters.filter({ $0 != target }) {
            let connection = admin(node)
            defer { connection.close() }
            try connection.call(["CLUSTER", "SETSLOT", String(slot.rawValue), "NODE", targetID])
        }
    }

    /// Polls `body` until it returns a value, for at most `timeout` seconds (errors count as not yet).
    @discardableResult
    static func eventually<T>(
        timeout: TimeInterval = 30, _ what: String, _ body: () throws -> T?
    ) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        var lastError = ""
        while Date() < deadline {
            do {
                if let value = try body() { return value }
            } catch {
                lastError = "\(error)"
            }
            usleep(100_000)
        }
        throw ClusterTestError(
            description: "\(what) did not happen within \(Int(timeout)) s (last error: \(lastError))")
    }
}
