import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// The partition lease (SPEC 9: one owner per partition), renewed between the batches of long commands.
extension PartitionOwner {
    // MARK: - Lease

    var lease: Lease {
        Lease(key: keys.lease, epochKey: keys.epoch, holder: config.instance, milliseconds: config.leaseMilliseconds)
    }

    /// Takes or renews the lease, or gives it up to rebalance (``PartitionShare``). Returns whether this process
    /// owns the partition now. Called between rounds, so a lease given up has nothing in flight.
    func holdLease(_ redis: any RedisCommands) throws -> Bool {
        if state.withLock({ $0.machine.epoch }) != nil {
            if try lease.renew(redis) {
                state.withLock { $0.renewed = .now }
                try readLayout(redis, force: false)
                if PartitionShare.shouldRelease(partition: partition, held: share.held, share: share.share) {
                    releaseLease(redis)
                    logger.info(
                        "gave the partition up to another process (rebalancing)",
                        metadata: ["members": "\(share.members)", "share": "\(share.share)"])
                    return false
                }
                return true
            }
            logger.warning("lost the partition lease")
            state.withLock { $0.machine.lost() }
            share.set(partition, held: false)
        }
        guard try wantsLease(redis) else { return false }
        // The holder is unique per process instance: two processes never both think they hold a lease, even
        // with the same consumer name. A restarted process waits for its predecessor's lease to expire.
        guard let epoch = try lease.acquire(redis, waitingFor: config.replicaWait) else { return false }
        share.set(partition, held: true)
        let position = try inbox.position(redis)
        state.withLock {
            $0.renewed = .now
            $0.machine.took(epoch: String(epoch), replied: position.replied)
            $0.applied = position.applied
            $0.clock = position.clock
        }
        try readLayout(redis, force: true)
        logger.info("took the partition", metadata: ["epoch": "\(epoch)"])
        return true
    }

    /// Reads the deployment's layout (`dee migrate` moves it on while engines run): until it is 3, the owner also
    /// reads layout 2's contact indexes and enrollment hash. On taking the partition, then at most once per third of
    /// a lease (rounds renew the lease each time; the layout need not be read that often).
    private func readLayout(_ redis: any RedisCommands, force: Bool) throws {
        let due = state.withLock { s in
            force || s.layoutRead.map { ContinuousClock.now - $0 >= .milliseconds(config.leaseMilliseconds / 3) } ?? true
        }
        guard due else { return }
        let layout = try redis.call(["HGET", Keys(prefix: config.prefix).meta, "layout"]).int ?? Layout.longFields
        state.withLock {
            $0.legacyContacts = layout < Layout.contactRecords
            $0.layoutRead = .now
        }
    }

    /// Gives the lease up (graceful shutdown, rebalancing).
    func releaseLease(_ redis: any RedisCommands) {
        lease.release(redis)
        state.withLock {
            $0.machine.lost()
            $0.freeSince = nil
        }
        share.set(partition, held: false)
    }

    /// Whether this process should ask for the partition's lease now: below its share, or the lease stayed free
    /// for a whole lease period (then any process takes it, so that no partition waits on a miscount).
    private func wantsLease(_ redis: any RedisCommands) throws -> Bool {
        let held = share.held.count, target = share.share
        if held < target { return true }
        let free = try redis.call(["EXISTS", keys.lease]).int == 0
        let freeFor: Duration? = state.withLock { s in
            if !free {
                s.freeSince = nil
                return nil
            }
            let since = s.freeSince ?? .now
            s.freeSince = since
            return ContinuousClock.now - since
        }
        return PartitionShare.standing(
            held: held, share: target, freeFor: freeFor, grace: .milliseconds(config.leaseMilliseconds)) == .take
    }

    /// A third of the lease has passed since it was last renewed.
    var leaseRenewalDue: Bool {
        state.withLock { ContinuousClock.now - $0.renewed > .milliseconds(config.leaseMilliseconds / 3) }
    }

    /// A batched command (a large tick or bulk command) can outlast the lease: renew it between batches.
    func renewDuringLongCommands(_ redis: any RedisCommands) throws {
        guard leaseRenewalDue else { return }
        guard try lease.renew(redis) else {
            logger.warning("lost the partition lease during a long command")
            state.withLock { $0.machine.lost() }
            throw Fenced()
        }
        state.withLock { $0.renewed = .now }
    }
}
