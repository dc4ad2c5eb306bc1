import Synchronization

/// Rebalancing (issue 11): how the engine processes of a deployment share its partitions, decided without I/O.
///
/// Every process reads the live processes (``Membership``, sorted by instance name) and aims at its target: `P / N`
/// partitions, one more for the first `P mod N` processes in that order, so the targets add up to P. A process
/// below its target takes free partitions; one at its target leaves a free partition to the others unless it
/// stayed free for a lease (nobody took it: processes that disagree on the members for a moment); one above its
/// target gives up its highest-numbered partition between two rounds, one at a time, and the others take it.
/// Ownership itself stays the lease and its fencing epoch (SPEC 9): rebalancing only decides who asks for a lease
/// and who gives one up.
enum PartitionShare {
    /// How many of `partitions` the process at `rank` among `members` processes should hold (all of them when it
    /// is not among the members yet).
    static func target(partitions: Int, members: Int, rank: Int?) -> Int {
        guard let rank, members > 0, rank < members else { return max(0, partitions) }
        return partitions / members + (rank < partitions % members ? 1 : 0)
    }

    enum Standing: Equatable {
        /// Try to take the lease.
        case take
        /// Leave it to another process; look again next round.
        case leave
    }

    /// For a partition this process does not hold: `held` partitions held by it, the lease free for `freeFor`
    /// (nil: held by another process, or not looked at yet).
    static func standing(held: Int, share: Int, freeFor: Duration?, grace: Duration) -> Standing {
        if held < share { return .take }
        if let freeFor, freeFor >= grace { return .take }
        return .leave
    }

    /// For a partition this process holds: give it up when the process holds more than its share and this is its
    /// highest-numbered partition (so a process gives up one partition at a time, the same one whatever loop asks).
    static func shouldRelease(partition: Int, held: Set<Int>, share: Int) -> Bool {
        held.count > share && held.max() == partition
    }
}

/// What one process knows of its share: the members (the membership service writes them) and which partitions
/// this process holds (each owner loop writes its own).
final class ProcessPartitions: Sendable {
    struct State {
        var members: [String] = []
        var held = Set<Int>()
    }

    let partitions: Int
    let instance: String
    private let state = Mutex(State())

    init(partitions: Int, instance: String) {
        self.partitions = partitions
        self.instance = instance
    }

    var members: Int { state.withLock { max(1, $0.members.count) } }
    var held: Set<Int> { state.withLock { $0.held } }

    /// The live processes, sorted by instance name.
    func setMembers(_ members: [String]) { state.withLock { $0.members = members } }

    func set(_ partition: Int, held: Bool) {
        state.withLock { s in
            if held { s.held.insert(partition) } else { s.held.remove(partition) }
        }
    }

    /// This process's target now.
    var share: Int {
        state.withLock { s in
            PartitionShare.target(partitions: partitions, members: s.members.count, rank: s.members.firstIndex(of: instance))
        }
    }
}
