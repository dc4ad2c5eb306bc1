/// Who waits for which reply, and who reads the reply stream: the decisions of ``DEEEngine``'s demultiplexer as a
/// plain value, so that they can be tested without Redis. The engine keeps it behind a `Mutex` and does the I/O.
///
/// There is no background reader. A caller waiting for a reply becomes the reader when nobody reads (one at a
/// time); it reads one round (one blocking `XREAD` of at most a fraction of a second), hands every reply to the
/// caller it belongs to, and gives up the role; every other waiter sleeps on a continuation until its reply comes,
/// the role is free, or its wake time (the next re-publish or its deadline) has passed at the end of a round.
/// So every read happens inside some caller's task, and nothing runs once nobody waits.
struct ReplyWaiters: Sendable {
    /// One caller's wait for the reply to its requestId.
    struct Waiter: Sendable {
        let requestId: String
        /// When the caller must look again even without a reply: its next re-publish, or its deadline.
        var wakeAt: ContinuousClock.Instant
        var reply: [String: String]?
        var parked: CheckedContinuation<Void, Never>?
        var cancelled = false
    }

    /// What a waiting caller does next.
    enum Step: Equatable, Sendable {
        /// Read one round of the reply stream after this entry id, then call ``finishRead(_:lastId:now:)``.
        case read(after: String)
        /// Sleep: ``park(_:_:)`` the caller's continuation.
        case park
        /// The client was closed, or the caller cancelled.
        case stop
    }

    private(set) var waiters: [Int: Waiter] = [:]
    /// requestId → tickets of the callers waiting for it (a caller may reuse another's requestId).
    private var tickets: [String: [Int]] = [:]
    private var nextTicket = 0
    /// Whether some caller is reading a round now.
    private(set) var reading = false
    /// The id of the last reply entry read: the next round reads after it.
    private(set) var lastId = "0-0"
    private(set) var closed = false

    /// Registers a caller waiting for the reply to `requestId`; nil once the client is closed.
    mutating func register(requestId: String, wakeAt: ContinuousClock.Instant) -> Int? {
        guard !closed else { return nil }
        nextTicket += 1
        waiters[nextTicket] = Waiter(requestId: requestId, wakeAt: wakeAt)
        tickets[requestId, default: []].append(nextTicket)
        return nextTicket
    }

    /// Forgets a caller (it has its reply, or gave up). A reply that arrives for nobody is dropped.
    mutating func unregister(_ ticket: Int) {
        guard let waiter = waiters.removeValue(forKey: ticket) else { return }
        tickets[waiter.requestId]?.removeAll { $0 == ticket }
        if tickets[waiter.requestId]?.isEmpty == true { tickets[waiter.requestId] = nil }
    }

    /// The reply, once it has arrived.
    func reply(_ ticket: Int) -> [String: String]? { waiters[ticket]?.reply }

    /// Moves the caller's wake time (after a re-publish).
    mutating func setWakeAt(_ ticket: Int, _ instant: ContinuousClock.Instant) {
        waiters[ticket]?.wakeAt = instant
    }

    /// Reads when nobody else does; otherwise sleeps.
    mutating func step(_ ticket: Int) -> Step {
        guard !closed, let waiter = waiters[ticket], !waiter.cancelled else { return .stop }
        if !reading {
            reading = true
            return .read(after: lastId)
        }
        return .park
    }

    /// Parks the caller's continuation; false when it must not sleep (its reply is here, the reader role is
    /// free, it was cancelled, the client closed), and the caller resumes it at once.
    mutating func park(_ ticket: Int, _ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard !closed, let waiter = waiters[ticket], waiter.reply == nil, !waiter.cancelled, reading else {
            return false
        }
        waiters[ticket]?.parked = continuation
        return true
    }

    /// Ends a round: hands each reply to its waiters, frees the reader role, and returns the continuations to
    /// resume (outside the lock): those whose reply came, those whose wake time has passed, and one more sleeper,
    /// so that somebody reads the next round.
    mutating func finishRead(
        _ entries: [(id: String, fields: [String: String])], lastId: String?, now: ContinuousClock.Instant
    ) -> [CheckedContinuation<Void, Never>] {
        reading = false
        if let lastId { self.lastId = lastId }
        var wake: [CheckedContinuation<Void, Never>] = []
        func take(_ ticket: Int) {
            if let c = waiters[ticket]?.parked {
                waiters[ticket]?.parked = nil
                wake.append(c)
            }
        }
        for entry in entries {
            guard let requestId = entry.fields["requestId"], let waiting = tickets[requestId] else { continue }
            for ticket in waiting where waiters[ticket]?.reply == nil {
                waiters[ticket]?.reply = entry.fields
                take(ticket)
            }
        }
        for (ticket, waiter) in waiters where waiter.parked != nil && waiter.wakeAt <= now { take(ticket) }
        if let sleeper = waiters.first(where: { $0.value.parked != nil })?.key { take(sleeper) }
        return wake
    }

    /// Marks a caller cancelled; returns its continuation if it sleeps.
    mutating func cancel(_ ticket: Int) -> CheckedContinuation<Void, Never>? {
        waiters[ticket]?.cancelled = true
        let parked = waiters[ticket]?.parked
        waiters[ticket]?.parked = nil
        return parked
    }

    /// Closes: no new waiters; every sleeper is returned to be woken (each then stops).
    mutating func close() -> [CheckedContinuation<Void, Never>] {
        closed = true
        var wake: [CheckedContinuation<Void, Never>] = []
        for (ticket, waiter) in waiters {
            if let c = waiter.parked {
                wake.append(c)
                waiters[ticket]?.parked = nil
            }
        }
        return wake
    }
}
