/// One node of a cluster, by the address clients reach it at.
public struct RedisNodeAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func < (lhs: RedisNodeAddress, rhs: RedisNodeAddress) -> Bool {
        (lhs.host, lhs.port) < (rhs.host, rhs.port)
    }
}

/// Which master serves each of the 16384 slots, as one node of the cluster last told us.
///
/// Built from `CLUSTER SHARDS` (Redis 7) or `CLUSTER SLOTS` (older servers). A slot no master serves (a cluster
/// being set up, a shard whose master failed and has no successor yet) has no node.
public struct RedisClusterSlotMap: Sendable, Equatable {
    /// The masters that serve at least one slot, in address order.
    public private(set) var masters: [RedisNodeAddress]
    /// Every node the reply named (masters, replicas, failed nodes): the seeds of the next discovery.
    public private(set) var knownNodes: [RedisNodeAddress]
    /// For each slot, an index into `masters`, or -1.
    private var owners: [Int16]
    /// For each master, how many slots it serves.
    private var counts: [Int] = []

    /// A map from explicit ranges (for tests and for building a map by hand).
    public init(ranges: [(ClosedRange<Int>, RedisNodeAddress)], knownNodes: [RedisNodeAddress] = []) {
        masters = []
        owners = Array(repeating: -1, count: HashSlot.count)
        self.knownNodes = []
        for (range, node) in ranges where range.lowerBound < HashSlot.count && range.upperBound >= 0 {
            let clamped = range.clamped(to: 0...(HashSlot.count - 1))
            let index = indexOf(master: node)
            for slot in clamped { owners[slot] = index }
        }
        compact()
        self.knownNodes = Array(Set(knownNodes + masters)).sorted()
    }

    /// The master of `slot`, if one serves it.
    public func node(for slot: HashSlot) -> RedisNodeAddress? {
        let index = owners[Int(slot.rawValue)]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// The number of slots that have a master (16384 in a healthy cluster).
    public var coveredSlots: Int { owners.lazy.filter { $0 >= 0 }.count }

    /// The slots `node` serves, as ranges.
    public func slots(of node: RedisNodeAddress) -> [ClosedRange<Int>] {
        guard let target = masters.firstIndex(of: node) else { return [] }
        var ranges: [ClosedRange<Int>] = []
        var start: Int?
        for slot in 0...HashSlot.count {
            let mine = slot < HashSlot.count && Int(owners[slot]) == target
            if mine, start == nil { start = slot }
            if !mine, let first = start {
                ranges.append(first...(slot - 1))
                start = nil
            }
        }
        return ranges
    }

    /// Records that `node` now serves `slot` (what a `MOVED` reply says).
    public mutating func assign(_ slot: HashSlot, to node: RedisNodeAddress) {
        let previous = owners[Int(slot.rawValue)]
        let added = !masters.contains(node)
        let index = indexOf(master: node)
        if previous == index { return }
        owners[Int(slot.rawValue)] = index
        if !knownNodes.contains(node) { knownNodes = (knownNodes + [node]).sorted() }
        // Renumbering (a scan of every slot) only when a master was added or lost its last slot.
        var lostLast = false
        if previous >= 0 {
            counts[Int(previous)] -= 1
            lostLast = counts[Int(previous)] == 0
        }
        if added || lostLast { compact() } else { counts[Int(index)] += 1 }
    }

    public static func == (lhs: RedisClusterSlotMap, rhs: RedisClusterSlotMap) -> Bool {
        lhs.masters == rhs.masters && lhs.owners == rhs.owners
    }

    private mutating func indexOf(master node: RedisNodeAddress) -> Int16 {
        if let index = masters.firstIndex(of: node) { return Int16(index) }
        masters.append(node)
        return Int16(masters.count - 1)
    }

    /// Drops masters that serve no slot and puts the rest in address order, so that equal maps compare equal.
    private mutating func compact() {
        var used = Array(repeating: false, count: masters.count)
        for index in owners where index >= 0 { used[Int(index)] = true }
        let kept = masters.indices.filter { used[$0] }.sorted { masters[$0] < masters[$1] }
        var renumber = Array(repeating: Int16(-1), count: masters.count)
        for (new, old) in kept.enumerated() { renumber[old] = Int16(new) }
        masters = kept.map { masters[$0] }
        counts = Array(repeating: 0, count: masters.count)
        for slot in owners.indices where owners[slot] >= 0 {
            owners[slot] = renumber[Int(owners[slot])]
            counts[Int(owners[slot])] += 1
        }
    }
}

extension RedisClusterSlotMap {
    /// Parses a `CLUSTER SHARDS` reply (RESP2: each shard a flat `slots, [start, end, …], nodes, [node…]` list, each
    /// node a flat field/value list). A shard's slots go to its node whose role is `master`, preferring one whose
    /// health is `online`: a master that failed stays listed as a master (in a shard without slots) until it rejoins
    /// as a replica. `queried` fills in a node that gives no address of its own.
    public init(shardsReply reply: RESPValue, queried: RedisNodeAddress) throws(RedisError) {
        guard case .array(let shards) = reply else {
            throw RedisError(.unexpectedReply, "CLUSTER SHARDS: expected an array, got \(reply)")
        }
        var ranges: [(ClosedRange<Int>, RedisNodeAddress)] = []
        var known: [RedisNodeAddress] = []
        for shard in shards {
            let fields = Self.fields(shard)
            let slotNumbers = (fields["slots"]?.array ?? []).compactMap(\.int)
            var master: RedisNodeAddress?
            var masterOnline = false
            for node in fields["nodes"]?.array ?? [] {
                let info = Self.fields(node)
                guard let port = info["port"]?.int, port > 0 else { continue }
                var host = info["endpoint"]?.string ?? ""
                if host.isEmpty || host == "?" { host = info["ip"]?.string ?? "" }
                if host.isEmpty || host == "?" { host = queried.host }
                let address = RedisNodeAddress(host: host, port: port)
                known.append(address)
                let online = info["health"]?.string == "online"
                if info["role"]?.string == "master", master == nil || (online && !masterOnline) {
                    master = address
                    masterOnline = online
                }
            }
            guard let master, slotNumbers.count >= 2 else { continue }
            var i = 0
            while i + 1 < slotNumbers.count {
                if slotNumbers[i] <= slotNumbers[i + 1] { ranges.append((slotNumbers[i]...slotNumbers[i + 1], master)) }
                i += 2
            }
        }
        self.init(ranges: ranges, knownNodes: known)
    }

    /// Parses a `CLUSTER SLOTS` reply: `[start, end, [host, port, id, …] (the master), [host, port, …] (replicas)…]`
    /// per range. An empty host (or `?`) means the host of `queried`.
    public init(slotsReply reply: RESPValue, queried: RedisNodeAddress) throws(RedisError) {
        guard case .array(let entries) = reply else {
            throw RedisError(.unexpectedReply, "CLUSTER SLOTS: expected an array, got \(reply)")
        }
        var ranges: [(ClosedRange<Int>, RedisNodeAddress)] = []
        var known: [RedisNodeAddress] = []
        for entry in entries {
            guard let items = entry.array, items.count >= 3, let start = items[0].int, let end = items[1].int,
                start <= end
            else { continue }
            var nodes: [RedisNodeAddress] = []
            for node in items[2...] {
                guard let parts = node.array, parts.count >= 2, let port = parts[1].int, port > 0 else { continue }
                var host = parts[0].string ?? ""
                if host.isEmpty || host == "?" { host = queried.host }
                nodes.append(RedisNodeAddress(host: host, port: port))
            }
            guard let master = nodes.first else { continue }
            known += nodes
            ranges.append((start...end, master))
        }
        self.init(ranges: ranges, knownNodes: known)
    }

    /// A flat `[name, value, name, value, …]` list (or a RESP3 map sent as one) as a dictionary.
    private static func fields(_ value: RESPValue) -> [String: RESPValue] {
        guard let items = value.array else { return [:] }
        var out: [String: RESPValue] = [:]
        var i = 0
        while i + 1 < items.count {
            if let name = items[i].string { out[name] = items[i + 1] }
            i += 2
        }
        return out
    }
}
