import DEEStore

/// The router's decisions, without I/O (SPEC 9: routing stays correct with any number of engine processes).
///
/// One process at a time routes the ingress stream: the holder of the router lease. Every other process is a hot
/// standby that only tries to take the lease. The holder keeps ingress order by construction:
/// - on taking the lease it raises every partition's router fence to its epoch (a router that lost the lease can
///   no longer write an inbox), then moves every pending entry of the group to itself, and routes them, in id
///   order, before it reads anything new;
/// - after any failure it routes its pending entries again, before anything new;
/// - the first batch after taking the lease, and every batch after a failure, is routed one entry at a time, with
///   each attempt counted in Redis, so that one entry that cannot be routed (or that kills the process) is found
///   and retired, and its neighbours are not.
///
/// The shell (`Router`) asks ``next()`` what to do, does it, and reports back.
struct RouterStateMachine: Sendable, Equatable {
    enum Mode: Sendable, Equatable {
        /// Not holding the router lease.
        case standby
        /// Just took the lease with this epoch: raise the fences and claim every pending entry first.
        case claiming(epoch: Int)
        /// Routing this consumer's pending entries after `after`; `singly`: one at a time, attempts counted.
        case draining(epoch: Int, after: String, singly: Bool)
        /// Reading new entries.
        case live(epoch: Int)
    }

    enum Action: Sendable, Equatable {
        case acquireLease
        case claimPending(epoch: Int)
        case readPending(epoch: Int, after: String, singly: Bool)
        case readNew(epoch: Int)
    }

    private(set) var mode: Mode = .standby

    var epoch: Int? {
        switch mode {
        case .standby: return nil
        case .claiming(let e), .draining(let e, _, _), .live(let e): return e
        }
    }

    func next() -> Action {
        switch mode {
        case .standby: return .acquireLease
        case .claiming(let e): return .claimPending(epoch: e)
        case .draining(let e, let after, let singly): return .readPending(epoch: e, after: after, singly: singly)
        case .live(let e): return .readNew(epoch: e)
        }
    }

    mutating func leaseAcquired(epoch: Int) {
        mode = .claiming(epoch: epoch)
    }

    /// The renewal failed, or a write was fenced: another process routes now.
    mutating func leaseLost() {
        mode = .standby
    }

    /// Every pending entry is this consumer's now. A dead predecessor may have died on one of them: route the first
    /// batch one by one.
    mutating func claimed() {
        guard let e = epoch else { return }
        mode = .draining(epoch: e, after: "0", singly: true)
    }

    /// A batch of pending entries was routed (`last` its last id), or the pending list is empty (`last` nil).
    mutating func pendingRouted(last: String?) {
        guard case .draining(let e, _, _) = mode else { return }
        mode = last.map { .draining(epoch: e, after: $0, singly: false) } ?? .live(epoch: e)
    }

    /// A periodic sweep found entries pending under another consumer name: route them before anything new.
    mutating func strayPendingFound() {
        guard let e = epoch else { return }
        mode = .draining(epoch: e, after: "0", singly: false)
    }

    /// Something failed while routing. A transient failure (connection, Redis loading) retries the pending entries
    /// as a batch; any other failure retries them one by one, counting attempts. A lost lease is `leaseLost`.
    mutating func failed(_ failure: Failure) {
        guard let e = epoch else { return }
        if case .claiming = mode { return }
        mode = .draining(epoch: e, after: "0", singly: failure == .entry || isSingly)
    }

    private var isSingly: Bool {
        if case .draining(_, _, let singly) = mode { return singly }
        return false
    }
}

/// What happens to one routed entry once the append script has answered for every inbox it touches.
enum RoutedEntry: Sendable, Equatable {
    /// In every inbox (appended now, or there before): acknowledge it.
    case routed
    /// Some inbox is past the entry's id without having it: it can never be appended there. It goes to the dead
    /// letter stream (from which an operator re-drives it) and is acknowledged; never silently dropped.
    case gap(partitions: [Int])

    static func decide(_ codes: [(partition: Int, code: AppendCode)]) -> RoutedEntry {
        let gaps = codes.filter { $0.code == .gap }.map(\.partition)
        return gaps.isEmpty ? .routed : .gap(partitions: gaps)
    }
}
