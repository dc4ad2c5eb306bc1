import DEECore

/// The runs a group of consecutive commands reads, fetched in one pipeline before the group is computed, and kept
/// current as it is: each command of the group sees what the commands before it did, exactly as if each had read
/// Redis after the one before was written.
struct BatchRuns {
    /// Runs by id; an id fetched and found missing maps to nil.
    private var runs: [String: Run?] = [:]
    /// A contact's run ids: its index as fetched, plus runs the group created.
    private var byContact: [String: [String]] = [:]

    /// Records what the pipeline read for `id` (nil: no such run).
    mutating func fetched(_ id: String, _ run: Run?) {
        if runs[id] == nil { runs[id] = .some(run) }
    }

    /// Records a contact's run ids as read from its index.
    mutating func fetched(contact: String, ids: [String]) { byContact[contact] = ids }

    /// Whether the pipeline read the run (or found it missing).
    func has(_ id: String) -> Bool { runs[id] != nil }

    /// Whether the contact's index was read.
    func has(contact: String) -> Bool { byContact[contact] != nil }

    /// The run as the group has left it so far; nil when it does not exist.
    func run(_ id: String) -> Run? { runs[id] ?? nil }

    /// The contact's open runs, newest `startedAt` first and ties by id ascending: the order of the contact query
    /// the single path uses (``PartitionStore/query(_:offset:count:ceiling:skipTotal:_:)``).
    func openRuns(ofContact contact: String) -> [Run] {
        let ids = Set(byContact[contact] ?? [])
        return ids.compactMap { run($0) }.filter { $0.status.isOpen && $0.contactId == contact }
            .sorted { $0.startedAt != $1.startedAt ? $0.startedAt > $1.startedAt : $0.id < $1.id }
    }

    /// Every run of the contact, or nil when its index names a run whose hash is gone or is another contact's
    /// (state an operator left behind: the index query counts such an id, so only the single path answers exactly).
    func allRuns(ofContact contact: String) -> [Run]? {
        var out: [Run] = []
        for id in Set(byContact[contact] ?? []) {
            guard let run = run(id), run.contactId == contact else { return nil }
            out.append(run)
        }
        return out
    }

    /// listRuns by contact (SPEC 6) from the group's view: matching runs in listRuns order, `total` exact.
    func listRuns(_ filter: RunFilter, contact: String, limit: Int, offset: Int) -> JSONValue? {
        guard let runs = allRuns(ofContact: contact) else { return nil }
        let matching = runs.filter { filter.matches($0) }.sorted { PartitionReads.listOrder($0.id, $1.id) }
        let page = matching.dropFirst(offset).prefix(limit).map(\.wire)
        return ["runs": .array(Array(page)), "total": .int(matching.count)]
    }

    /// Takes in the runs a command changed.
    mutating func apply(_ changes: [RunChange]) {
        for change in changes {
            runs[change.run.id] = .some(change.run)
            if change.created { byContact[change.run.contactId, default: []].append(change.run.id) }
        }
    }
}
