import DEECore
import Foundation

// The typed calls: one per SPEC 6 command, named and shaped as the Runs API page names them.

extension DEEEngine {
    // MARK: - Runs

    /// Starts a run of an inline plan (registered implicitly: the same content is the same version) for a contact.
    ///
    /// `let run = try await engine.execute(plan, contact: Contact(id: "contact_123", email: "jane@example.com"))`
    /// gives a run `active` on the plan's first step, which executes at the next tick; with `startTick` later than
    /// the clock, a `pending` run that becomes active then.
    /// - Throws: `already_enrolled` (the contact has an open run of the plan), `suppressed`, `plan_invalid`, …
    public func execute(
        _ plan: Plan, contact: Contact, variables: [String: JSONValue] = [:], startTick: Int? = nil,
        requestId: String? = nil
    ) async throws(DEEClientError) -> ExecutionRun {
        try await call(
            "execute",
            ["plan": plan.json, "contact": contact.json, "variables": variables.nonEmpty, "startTick": startTick.json],
            requestId: requestId)
    }

    /// Starts a run of a registered plan (its latest version, or `version`) for a contact.
    public func execute(
        planId: String, version: Int? = nil, contact: Contact, variables: [String: JSONValue] = [:],
        startTick: Int? = nil, requestId: String? = nil
    ) async throws(DEEClientError) -> ExecutionRun {
        try await call(
            "execute",
            [
                "planId": .string(planId), "planVersion": version.json, "contact": contact.json,
                "variables": variables.nonEmpty, "startTick": startTick.json,
            ],
            requestId: requestId)
    }

    /// One run by id. - Throws: `not_found`.
    public func getRun(_ runId: String) async throws(DEEClientError) -> ExecutionRun {
        try await call("getRun", ["runId": .string(runId)])
    }

    /// Runs that match every filter given, newest `startedAt` first (ties in creation order), one page of `limit`
    /// (default 50, at most 1000) from `offset`; `total` counts every match.
    ///
    /// `try await engine.listRuns(status: [.failed], startedAfter: Date().addingTimeInterval(-86_400))`
    public func listRuns(
        status: [RunStatus]? = nil, planId: String? = nil, contactId: String? = nil, startedAfter: Date? = nil,
        startedBefore: Date? = nil, limit: Int? = nil, offset: Int? = nil
    ) async throws(DEEClientError) -> (runs: [ExecutionRun], total: Int) {
        let filter = RunFilter.matching(
            status: status, planId: planId, contactId: contactId, startedAfter: startedAfter,
            startedBefore: startedBefore)
        return try await listRuns(filter, limit: limit, offset: offset)
    }

    /// Runs that match `filter` (see ``listRuns(status:planId:contactId:startedAfter:startedBefore:limit:offset:)``).
    public func listRuns(
        _ filter: RunFilter, limit: Int? = nil, offset: Int? = nil
    ) async throws(DEEClientError) -> (runs: [ExecutionRun], total: Int) {
        var args = filter.arguments
        args["limit"] = limit.json
        args["offset"] = offset.json
        let page: RunPage = try await call("listRuns", args)
        return (page.runs, page.total)
    }

    /// Pauses an open run; it keeps signals and results meant for it until resumed.
    /// - Throws: `invalid_transition` for a terminal or paused run, `not_found`.
    public func pauseRun(
        _ runId: String, reason: String? = nil, requestId: String? = nil
    ) async throws(DEEClientError) -> ExecutionRun {
        try await call("pauseRun", ["runId": .string(runId), "reason": reason.json], requestId: requestId)
    }

    /// Resumes a paused run in the status it had.
    public func resumeRun(_ runId: String, requestId: String? = nil) async throws(DEEClientError) -> ExecutionRun {
        try await call("resumeRun", ["runId": .string(runId)], requestId: requestId)
    }

    /// Cancels an open run; the reason is recorded in its audit log.
    public func cancelRun(
        _ runId: String, reason: String, requestId: String? = nil
    ) async throws(DEEClientError) -> ExecutionRun {
        try await call("cancelRun", ["runId": .string(runId), "reason": .string(reason)], requestId: requestId)
    }

    // MARK: - Bulk

    /// Enrolls many contacts in an inline plan, in batches of `batchSize` (default 100). Contacts already enrolled
    /// or suppressed are `skipped`, invalid ones `errors`.
    public func bulkExecute(
        _ plan: Plan, contacts: [Contact], variables: [String: JSONValue] = [:], batchSize: Int? = nil,
        requestId: String? = nil, timeout: Duration? = nil
    ) async throws(DEEClientError) -> BulkResult {
        try await call(
            "bulkExecute",
            [
                "plan": plan.json, "contacts": .array(contacts.map(\.json)), "variables": variables.nonEmpty,
                "batchSize": batchSize.json,
            ],
            requestId: requestId, timeout: timeout)
    }

    /// Enrolls many contacts in a registered plan (its latest version, or `version`).
    public func bulkExecute(
        planId: String, version: Int? = nil, contacts: [Contact], variables: [String: JSONValue] = [:],
        batchSize: Int? = nil, requestId: String? = nil, timeout: Duration? = nil
    ) async throws(DEEClientError) -> BulkResult {
        try await call(
            "bulkExecute",
            [
                "planId": .string(planId), "planVersion": version.json, "contacts": .array(contacts.map(\.json)),
                "variables": variables.nonEmpty, "batchSize": batchSize.json,
            ],
            requestId: requestId, timeout: timeout)
    }

    /// Cancels every open run that matches `filters` (at least one) and existed when the command arrived, not one
    /// page; returns how many. `try await engine.bulkCancel(.matching(status: [.active], planId: "old-plan"),
    /// reason: "Plan deprecated")`
    @discardableResult
    public func bulkCancel(
        _ filters: RunFilter, reason: String, requestId: String? = nil, timeout: Duration? = nil
    ) async throws(DEEClientError) -> Int {
        let result: Cancelled = try await call(
            "bulkCancel", ["filters": .object(filters.arguments), "reason": .string(reason)], requestId: requestId,
            timeout: timeout)
        return result.cancelled
    }

    // MARK: - Plans

    /// Registers a plan: a new version when its content differs from the latest, else the latest.
    public func registerPlan(_ plan: Plan, requestId: String? = nil) async throws(DEEClientError) -> PlanRegistration {
        try await call("registerPlan", ["plan": plan.json], requestId: requestId)
    }

    /// A plan's latest version, or `version`. - Throws: `not_found`.
    public func getPlan(_ planId: String, version: Int? = nil) async throws(DEEClientError) -> PlanVersion {
        try await call("getPlan", ["planId": .string(planId), "version": version.json])
    }

    /// Every registered plan, by id.
    public func listPlans() async throws(DEEClientError) -> [PlanSummary] {
        try await call("listPlans", [:])
    }

    // MARK: - Clock, signals, executors

    /// Advances the clock `count` ticks (default 1); every due run executes at most one step per tick.
    @discardableResult
    public func tick(
        count: Int = 1, requestId: String? = nil, timeout: Duration? = nil
    ) async throws(DEEClientError) -> TickResult {
        try await call("tick", ["count": .int(count)], requestId: requestId, timeout: timeout)
    }

    /// Sends a signal to a contact's open runs (of one plan when `planId` is given); returns how many runs it
    /// reached. An `exitOn` signal completes them; a `waitForSignal` step waiting for it moves on.
    @discardableResult
    public func signal(
        contactId: String, name: String, data: [String: JSONValue]? = nil, planId: String? = nil,
        requestId: String? = nil
    ) async throws(DEEClientError) -> Int {
        let result: Delivered = try await call(
            "signal",
            [
                "contactId": .string(contactId), "name": .string(name), "data": data.map(JSONValue.object) ?? nil,
                "planId": planId.json,
            ],
            requestId: requestId)
        return result.delivered
    }

    /// Sends a signal to one run; returns 1 when it reached it, else 0.
    @discardableResult
    public func signal(
        runId: String, name: String, data: [String: JSONValue]? = nil, requestId: String? = nil
    ) async throws(DEEClientError) -> Int {
        let result: Delivered = try await call(
            "signal",
            ["runId": .string(runId), "name": .string(name), "data": data.map(JSONValue.object) ?? nil],
            requestId: requestId)
        return result.delivered
    }

    /// Reports the outcome of an awaited action request (by its `idempotencyKey`); returns the run.
    @discardableResult
    public func actionResult(
        runId: String, idempotencyKey: String, ok: Bool, error: String? = nil, data: [String: JSONValue]? = nil,
        requestId: String? = nil
    ) async throws(DEEClientError) -> ExecutionRun {
        try await call(
            "actionResult",
            [
                "runId": .string(runId), "idempotencyKey": .string(idempotencyKey), "ok": .bool(ok),
                "error": error.json, "data": data.map(JSONValue.object) ?? nil,
            ],
            requestId: requestId)
    }

    /// Suppresses a contact: its open runs are cancelled (returns how many) and new enrollments skipped.
    @discardableResult
    public func suppress(
        contactId: String, reason: String? = nil, requestId: String? = nil
    ) async throws(DEEClientError) -> Int {
        let result: Cancelled = try await call(
            "suppress", ["contactId": .string(contactId), "reason": reason.json], requestId: requestId)
        return result.cancelled
    }

    /// Lifts a contact's suppression.
    public func unsuppress(contactId: String, requestId: String? = nil) async throws(DEEClientError) {
        _ = try await command("unsuppress", ["contactId": contactId], requestId: requestId)
    }

    // MARK: - Audit, replay, operations

    /// A run's audit entries (`getAudit`), newest first, at most `limit` (default 100).
    public func audit(_ runId: String, limit: Int? = nil) async throws(DEEClientError) -> [AuditEntry] {
        try await call("getAudit", ["runId": .string(runId), "limit": limit.json])
    }

    /// Checks a run's audit hash chain (`verifyAudit`).
    public func verify(_ runId: String) async throws(DEEClientError) -> AuditVerification {
        try await call("verifyAudit", ["runId": .string(runId)])
    }

    /// Re-executes a run from its recorded inputs against its plan version, step by step beside the record.
    public func replay(_ runId: String) async throws(DEEClientError) -> ReplayResult {
        try await call("replay", ["runId": .string(runId)])
    }

    /// The clock, runs by status, plans, partitions and executor groups.
    public func stats() async throws(DEEClientError) -> EngineStats {
        try await call("stats", [:])
    }

    /// The newest dead letters (poison commands), at most `limit` (default 50).
    public func listDeadletters(limit: Int? = nil) async throws(DEEClientError) -> [DeadLetter] {
        try await call("listDeadletters", ["limit": limit.json])
    }

    /// Publishes a dead letter's command again (with its requestId, or its command id as one) and deletes it.
    @discardableResult
    public func redriveDeadletter(_ id: String, requestId: String? = nil) async throws(DEEClientError) -> Redrive {
        try await call("redriveDeadletter", ["id": .string(id)], requestId: requestId)
    }

    // MARK: - Encoding

    /// Publishes a command with JSON arguments (null ones left out) and decodes its result as `T`.
    func call<T: Decodable>(
        _ type: String, _ arguments: [String: JSONValue], requestId: String? = nil, timeout: Duration? = nil
    ) async throws(DEEClientError) -> T {
        let (text, rid) = try await resultText(
            type, Self.wireFields(arguments), requestId: requestId, timeout: timeout)
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw DEEClientError(
                .protocolError, "the result of \(type) is not a \(T.self): \(error)", requestId: rid)
        }
    }

    /// SPEC 5's field encoding: a string verbatim, anything else as JSON text; nulls are left out.
    static func wireFields(_ arguments: [String: JSONValue]) -> [String: String] {
        var fields: [String: String] = [:]
        for (name, value) in arguments {
            switch value {
            case .null: continue
            case .string(let s): fields[name] = s
            default: fields[name] = value.canonical
            }
        }
        return fields
    }
}

private struct Cancelled: Decodable { let cancelled: Int }
private struct Delivered: Decodable { let delivered: Int }

extension Optional where Wrapped == Int {
    fileprivate var json: JSONValue { map(JSONValue.int) ?? .null }
}

extension Dictionary where Key == String, Value == JSONValue {
    /// The object, or null when empty (an argument left out).
    fileprivate var nonEmpty: JSONValue { isEmpty ? .null : .object(self) }
}
