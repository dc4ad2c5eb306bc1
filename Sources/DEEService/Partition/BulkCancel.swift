import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// bulkCancel in a partition: every matching open run that existed when the command arrived, in batches.
extension PartitionOwner {
    /// Cancels every matching open run that existed when the command arrived (ids below the command's), in
    /// batches; each batch records its count.
    func bulkCancel(
        _ filter: RunFilter, reason: String, context: ChangeContext, changes: inout ChangeSet, _ redis: any RedisCommands
    ) throws -> Outcome {
        let progressKey = PartitionKeys.progressSuffix(context.commandId.description)
        let saved = try savedProgress(context, redis)
        var n = saved.batches
        var cancelled = saved.state.flatMap { Int($0) } ?? 0
        var open = filter
        open.statuses = (filter.statuses ?? RunStatus.open).filter(\.isOpen)
        let ceiling = RunID.lowerBound(for: context.commandId)
        while !(open.statuses ?? []).isEmpty {
            let ids = try store.query(open, offset: 0, count: config.cancelBatchSize, ceiling: ceiling, skipTotal: true, redis).ids
            if ids.isEmpty { break }
            var set = ChangeSet(entry: nil)
            for run in try store.loadRuns(ids, redis).compactMap({ $0 }) where run.status.isOpen {
                set.changes.append(
                    try Transitions.cancel(run: run, reason: reason, action: "bulkCancel", context: context, signer: signer))
            }
            cancelled += set.changes.count
            n += 1
            set.batch = (progressKey, n, String(cancelled))
            try commit(set, redis)
        }
        changes.batch = (progressKey, n + 1, String(cancelled))
        return .ok(["cancelled": .int(cancelled)])
    }
}
