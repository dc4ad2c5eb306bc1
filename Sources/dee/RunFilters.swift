import ArgumentParser
import DEECore

/// The filters of `runs list` and `bulk cancel`, as listRuns takes them (SPEC 6).
struct RunFilterOptions: ParsableArguments {
    @Option(
        name: .customLong("status"),
        help: "Only runs in these statuses: a,b or the option repeated (pending active waiting paused completed failed cancelled).")
    var statusArguments: [String] = []

    @Option(help: "Only runs of this plan id.")
    var plan: String?

    @Option(help: "Only runs of this contact id.")
    var contact: String?

    @Option(help: "Only runs started at or after this: \(TimeArgument.help).")
    var since: String?

    @Option(help: "Only runs started before this: \(TimeArgument.help).")
    var before: String?

    /// Every status named, in the order given, once each.
    var statuses: [String] {
        var seen: Set<String> = []
        return statusArguments.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces }
            .filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    var isEmpty: Bool { statuses.isEmpty && plan == nil && contact == nil && since == nil && before == nil }

    func validate() throws {
        let known = Set(RunStatus.allCases.map(\.rawValue))
        for s in statuses where !known.contains(s) {
            throw ValidationError(
                "--status \(s) is not a run status (\(RunStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        for (name, value) in [("--since", since), ("--before", before)] {
            if let value, TimeArgument.epochMilliseconds(value, now: 0) == nil {
                throw ValidationError("\(name) takes \(TimeArgument.help) (got \(value))")
            }
        }
    }

    /// The time window in epoch ms, resolved against `now`.
    func window(now: Int64) -> (after: Int64?, before: Int64?) {
        (since.flatMap { TimeArgument.epochMilliseconds($0, now: now) },
            before.flatMap { TimeArgument.epochMilliseconds($0, now: now) })
    }

    /// The filters as a JSON object (bulkCancel's `filters`), statuses replaced by `statuses` when given.
    func filters(now: Int64, statuses override: [String]? = nil) -> [String: JSONValue] {
        var o: [String: JSONValue] = [:]
        let names = override ?? statuses
        if !names.isEmpty { o["status"] = .array(names.map(JSONValue.string)) }
        if let plan { o["planId"] = .string(plan) }
        if let contact { o["contactId"] = .string(contact) }
        let (after, before) = window(now: now)
        if let after { o["startedAfter"] = .int(Int(after)) }
        if let before { o["startedBefore"] = .int(Int(before)) }
        return o
    }

    /// The filters as listRuns' wire fields.
    func fields(now: Int64, statuses override: [String]? = nil) -> [String: String] {
        filters(now: now, statuses: override).mapValues { $0.string ?? $0.canonical }
    }

    /// `plan=welcome status=active,waiting`, for messages.
    var summary: String {
        var parts: [String] = []
        if !statuses.isEmpty { parts.append("status=" + statuses.joined(separator: ",")) }
        if let plan { parts.append("plan=\(plan)") }
        if let contact { parts.append("contact=\(contact)") }
        if let since { parts.append("since=\(since)") }
        if let before { parts.append("before=\(before)") }
        return parts.joined(separator: " ")
    }
}
