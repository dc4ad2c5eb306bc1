// The results of SPEC 6's commands as Codable values, field for field as the engine replies them.

/// `registerPlan`'s result.
public struct PlanRegistration: Sendable, Hashable, Codable {
    /// The plan's id.
    public var planId: String
    /// The version the content has: a new one, or the latest when it is the same content.
    public var version: Int
    /// Whether this registration made a new version.
    public var created: Bool
    /// Validation warnings that did not reject the plan (an `exitOn` signal also awaited by a step).
    public var warnings: [String]

    /// A registration result.
    public init(planId: String, version: Int, created: Bool, warnings: [String] = []) {
        self.planId = planId
        self.version = version
        self.created = created
        self.warnings = warnings
    }

    enum CodingKeys: String, CodingKey { case planId, version, created, warnings }

    /// Decodes it; `warnings` is absent when there are none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        planId = try c.decode(String.self, forKey: .planId)
        version = try c.decode(Int.self, forKey: .version)
        created = try c.decode(Bool.self, forKey: .created)
        warnings = try c.decodeIfPresent([String].self, forKey: .warnings) ?? []
    }
}

/// One plan of `listPlans`.
public struct PlanSummary: Sendable, Hashable, Codable {
    /// The plan's id.
    public var planId: String
    /// Its name.
    public var name: String
    /// Its newest version.
    public var latestVersion: Int

    /// A plan summary.
    public init(planId: String, name: String, latestVersion: Int) {
        self.planId = planId
        self.name = name
        self.latestVersion = latestVersion
    }
}

/// `getPlan`'s result: one version of a plan.
public struct PlanVersion: Sendable, Equatable, Codable {
    /// The plan as registered (without `version`).
    public var plan: Plan
    /// Which version it is.
    public var version: Int

    /// A plan version.
    public init(plan: Plan, version: Int) {
        self.plan = plan
        self.version = version
    }

    /// Decodes the plan object with its `version` beside its fields.
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        guard var o = value.object, let version = o.removeValue(forKey: "version")?.int else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "a plan version is a plan with its version"))
        }
        do {
            plan = try Plan.parse(.object(o))
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
        self.version = version
    }

    /// Encodes the plan object with `version` added, as the engine replies it.
    public func encode(to encoder: any Encoder) throws {
        var o = plan.json.object ?? [:]
        o["version"] = .int(version)
        try JSONValue.object(o).encode(to: encoder)
    }
}

/// `listRuns`' result: one page of runs, and how many match in all.
public struct RunPage: Sendable, Hashable, Codable {
    /// The page, newest `startedAt` first (ties in creation order).
    public var runs: [ExecutionRun]
    /// Every run that matches, not only this page.
    public var total: Int

    /// A page of runs.
    public init(runs: [ExecutionRun], total: Int) {
        self.runs = runs
        self.total = total
    }
}

/// A contact `bulkExecute` skipped: already enrolled, or suppressed.
public struct SkippedContact: Sendable, Hashable, Codable {
    /// The contact's place in the command's `contacts` (from 0).
    public var index: Int?
    /// The contact's id.
    public var contactId: String
    /// `already_enrolled` or `suppressed`.
    public var reason: String

    /// A skipped contact.
    public init(index: Int? = nil, contactId: String, reason: String) {
        self.index = index
        self.contactId = contactId
        self.reason = reason
    }
}

/// A contact `bulkExecute` could not enroll because it is not valid.
public struct BulkError: Sendable, Equatable, Codable {
    /// The contact's place in the command's `contacts` (from 0).
    public var index: Int
    /// Why (a `bad_request` naming `contacts[i]…`).
    public var error: DEEError

    /// A bulk error.
    public init(index: Int, error: DEEError) {
        self.index = index
        self.error = error
    }
}

/// `bulkExecute`'s result.
public struct BulkResult: Sendable, Equatable, Codable {
    /// Runs created.
    public var created: Int
    /// Contacts skipped: already enrolled or suppressed.
    public var skipped: Int
    /// Contacts that failed validation.
    public var errors: Int
    /// The skipped contacts (at most 1000).
    public var skippedContacts: [SkippedContact]
    /// The invalid contacts (at most 1000).
    public var errorDetails: [BulkError]

    /// A bulk result.
    public init(
        created: Int, skipped: Int, errors: Int, skippedContacts: [SkippedContact] = [],
        errorDetails: [BulkError] = []
    ) {
        self.created = created
        self.skipped = skipped
        self.errors = errors
        self.skippedContacts = skippedContacts
        self.errorDetails = errorDetails
    }
}

/// `tick`'s result.
public struct TickResult: Sendable, Hashable, Codable {
    /// The clock after the command.
    public var tick: Int
    /// Runs that changed, summed over the ticks.
    public var stepped: Int

    /// A tick result.
    public init(tick: Int, stepped: Int) {
        self.tick = tick
        self.stepped = stepped
    }
}

/// `verifyAudit`'s result.
public struct AuditVerification: Sendable, Hashable, Codable {
    /// Whether the chain is intact: no entry edited, removed, inserted or truncated.
    public var valid: Bool
    /// How many entries were checked.
    public var entries: Int
    /// The index (oldest first, from 0) of the first entry that fails.
    public var brokenAt: Int?
    /// True when a terminal run's entries are gone after the configured audit retention.
    public var expired: Bool?

    /// A verification result.
    public init(valid: Bool, entries: Int, brokenAt: Int? = nil, expired: Bool? = nil) {
        self.valid = valid
        self.entries = entries
        self.brokenAt = brokenAt
        self.expired = expired
    }
}

/// One recorded input of a run, re-executed by `replay`.
public struct ReplayStep: Sendable, Hashable, Codable {
    /// The entry's place in the audit log (oldest first, from 0).
    public var index: Int
    /// The audit action (`execute`, `tick`, `signal`, …), or `state` for the final comparison.
    public var action: String
    /// The tick of the entry.
    public var tick: Int?
    /// The command that made the entry.
    public var commandId: String?
    /// Whether re-executing gave the recorded entry.
    public var identical: Bool
    /// Why not, when it was not.
    public var note: String?

    /// A replay step.
    public init(
        index: Int, action: String, tick: Int? = nil, commandId: String? = nil, identical: Bool, note: String? = nil
    ) {
        self.index = index
        self.action = action
        self.tick = tick
        self.commandId = commandId
        self.identical = identical
        self.note = note
    }
}

/// `replay`'s result.
public struct ReplayResult: Sendable, Hashable, Codable {
    /// Whether every step and the final state came out as recorded.
    public var identical: Bool
    /// Each recorded input beside what re-executing it gave.
    public var steps: [ReplayStep]

    /// A replay result.
    public init(identical: Bool, steps: [ReplayStep]) {
        self.identical = identical
        self.steps = steps
    }
}

/// An executor consumer group on a partition's actions stream, as `stats` shows it.
public struct ExecutorGroup: Sendable, Hashable, Codable {
    /// The partition.
    public var partition: Int
    /// The consumer group's name.
    public var group: String
    /// Action requests delivered to it and not yet acknowledged.
    public var pending: Int
    /// Action requests not yet delivered to it (nil when Redis cannot tell).
    public var lag: Int?

    /// An executor group.
    public init(partition: Int, group: String, pending: Int, lag: Int? = nil) {
        self.partition = partition
        self.group = group
        self.pending = pending
        self.lag = lag
    }
}

/// `stats`' result.
public struct EngineStats: Sendable, Hashable, Codable {
    /// The last tick every partition has finished.
    public var tick: Int
    /// How many runs are in each status (every status present).
    public var runsByStatus: [RunStatus: Int]
    /// Registered plans.
    public var plans: Int
    /// The deployment's partition count.
    public var partitions: Int
    /// Executor groups on the actions streams.
    public var executors: [ExecutorGroup]
    /// Action requests the actions streams hold.
    public var actionsBacklog: Int

    /// Engine statistics.
    public init(
        tick: Int, runsByStatus: [RunStatus: Int], plans: Int, partitions: Int, executors: [ExecutorGroup] = [],
        actionsBacklog: Int = 0
    ) {
        self.tick = tick
        self.runsByStatus = runsByStatus
        self.plans = plans
        self.partitions = partitions
        self.executors = executors
        self.actionsBacklog = actionsBacklog
    }

    enum CodingKeys: String, CodingKey { case tick, runsByStatus, plans, partitions, executors, actionsBacklog }

    /// Decodes it; `runsByStatus` is an object keyed by status name.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tick = try c.decode(Int.self, forKey: .tick)
        let counts = try c.decode([String: Int].self, forKey: .runsByStatus)
        var byStatus: [RunStatus: Int] = [:]
        for (name, count) in counts {
            if let status = RunStatus(rawValue: name) { byStatus[status] = count }
        }
        runsByStatus = byStatus
        plans = try c.decode(Int.self, forKey: .plans)
        partitions = try c.decode(Int.self, forKey: .partitions)
        executors = try c.decodeIfPresent([ExecutorGroup].self, forKey: .executors) ?? []
        actionsBacklog = try c.decodeIfPresent(Int.self, forKey: .actionsBacklog) ?? 0
    }

    /// Encodes it as the engine replies it.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(tick, forKey: .tick)
        try c.encode(
            Dictionary(uniqueKeysWithValues: runsByStatus.map { ($0.key.rawValue, $0.value) }), forKey: .runsByStatus)
        try c.encode(plans, forKey: .plans)
        try c.encode(partitions, forKey: .partitions)
        try c.encode(executors, forKey: .executors)
        try c.encode(actionsBacklog, forKey: .actionsBacklog)
    }
}

/// A poison command on `<prefix>:deadletter` (SPEC 9), as `listDeadletters` shows it.
public struct DeadLetter: Sendable, Hashable, Codable, Identifiable {
    /// The dead letter's stream entry id (what `redriveDeadletter` takes).
    public var id: String
    /// The command's ingress entry id.
    public var commandId: String?
    /// `ingress`, or `partition <p>`.
    public var source: String?
    /// The error of its last attempt.
    public var error: String?
    /// The command's fields as it was published (nil when unreadable).
    public var entry: [String: String]?

    /// A dead letter.
    public init(
        id: String, commandId: String? = nil, source: String? = nil, error: String? = nil,
        entry: [String: String]? = nil
    ) {
        self.id = id
        self.commandId = commandId
        self.source = source
        self.error = error
        self.entry = entry
    }
}

/// `redriveDeadletter`'s result.
public struct Redrive: Sendable, Hashable, Codable {
    /// The dead letter re-driven (and deleted).
    public var redriven: String
    /// The new ingress entry id of its command.
    public var commandId: String

    /// A re-drive result.
    public init(redriven: String, commandId: String) {
        self.redriven = redriven
        self.commandId = commandId
    }
}
