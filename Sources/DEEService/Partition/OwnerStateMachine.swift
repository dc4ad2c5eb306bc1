/// A partition owner's decisions, without I/O (SPEC 9: one fenced owner per partition).
///
/// - Lease: a standby only tries to take the lease; taking it gives the epoch every write carries; a renewal that
///   fails, or a write refused by the fence, means another process owns the partition now.
/// - Where to read: after the replied watermark. It moves only once the replies of every entry below it are
///   written (``replied(through:)``), so a reply lost with a connection is sent again: the entry is read again,
///   found applied, and its stored result replied.
/// - How: the first batch after taking the partition (the predecessor may have died on one of its entries), and
///   the batch after an entry's failure, are applied one entry at a time with attempts counted in Redis, so that
///   the entry at fault is found, counted and, past its attempts, retired (``AttemptDecision``); its neighbours
///   are not counted.
struct OwnerStateMachine: Sendable, Equatable {
    enum Read: Sendable, Equatable {
        /// Not owning the partition: try to take the lease.
        case takeLease
        /// Read the inbox after `after`, and apply the batch together.
        case batch(after: String)
        /// Read the inbox after `after`, and apply it one entry at a time.
        case singly(after: String)
    }

    private(set) var epoch: String?
    private(set) var watermark = "0-0"
    private(set) var singly = true
    /// After a failure, what this process remembers of the partition (the applied watermark, the clock) may be
    /// behind Redis: an apply may have gone through with its answer lost. Read them again before applying more.
    private(set) var stale = false

    func next() -> Read {
        guard epoch != nil else { return .takeLease }
        return singly ? .singly(after: watermark) : .batch(after: watermark)
    }

    /// Took the lease with `epoch`; `replied` is the partition's replied watermark in Redis.
    mutating func took(epoch: String, replied: String?) {
        self.epoch = epoch
        watermark = replied ?? "0-0"
        singly = true
        stale = false
    }

    /// The applied watermark and the clock were read again from Redis.
    mutating func reloaded() {
        stale = false
    }

    /// A renewal failed, or the fence refused a write.
    mutating func lost() {
        epoch = nil
    }

    /// The replies of every entry up to `id` are written (and the watermark stored): read after it from now on.
    mutating func replied(through id: String) {
        watermark = id
    }

    /// Applying failed. An entry's failure sends the next batch one by one; a transient one only retries. Either
    /// way, what the owner remembers is read again from Redis first.
    mutating func failed(_ failure: Failure) {
        if failure == .entry { singly = true }
        stale = true
    }

    /// A batch applied one by one went through: back to whole batches.
    mutating func singlyDone() {
        singly = false
    }
}
