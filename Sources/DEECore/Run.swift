/// Run statuses (SPEC 3).
public enum RunStatus: String, Sendable, CaseIterable, Codable {
    case pending, active, waiting, paused, completed, failed, cancelled

    /// pending, active, waiting, paused: the run holds its contact's enrollment.
    public var isOpen: Bool {
        switch self {
        case .pending, .active, .waiting, .paused: return true
        case .completed, .failed, .cancelled: return false
        }
    }

    public static let open: [RunStatus] = [.pending, .active, .waiting, .paused]
}

/// An execution run: the fields of the Runs API, plus what the engine keeps to drive it.
public struct Run: Sendable, Equatable {
    public var id: String
    public var planId: String
    public var planVersion: Int
    public var contactId: String
    public var status: RunStatus
    public var currentStep: String?
    public var stepsCompleted: Int
    public var stepsRemaining: Int
    public var startTick: Int
    public var currentTick: Int
    /// Epoch milliseconds, from the ingress entry id of the command that created the run.
    public var startedAt: Int64
    public var completedAt: Int64?
    public var outcome: String?
    public var variables: [String: JSONValue]
    public var error: String?

    // Engine state, not part of the API object.
    /// The contact as given at enrollment (for `{{contact.x}}`).
    public var contact: [String: JSONValue]
    /// The status a paused run returns to.
    public var pausedFrom: RunStatus?
    /// The tick at which the run next needs the engine (start, step, wake or timeout); nil when it waits only
    /// for a signal or is terminal. Kept while paused, so that resume knows the timer.
    public var due: Int?
    /// The attempt number of the awaited action the run is waiting for.
    public var attempt: Int
    /// The idempotency key of the awaited action request the run is waiting for.
    public var awaitKey: String?
    /// Signals and action results that reached the run while paused, applied in order on resume.
    public var deferred: [JSONValue]
    /// Head of the run's audit hash chain, and the number of entries in it.
    public var auditHead: String
    public var auditCount: Int

    public static let genesis = String(repeating: "0", count: 64)

    public init(
        id: String, planId: String, planVersion: Int, contactId: String, contact: [String: JSONValue],
        status: RunStatus, currentStep: String?, stepsRemaining: Int, startTick: Int, startedAt: Int64,
        variables: [String: JSONValue]
    ) {
        self.id = id
        self.planId = planId
        self.planVersion = planVersion
        self.contactId = contactId
        self.contact = contact
        self.status = status
        self.currentStep = currentStep
        self.stepsCompleted = 0
        self.stepsRemaining = stepsRemaining
        self.startTick = startTick
        self.currentTick = startTick
        self.startedAt = startedAt
        self.completedAt = nil
        self.outcome = nil
        self.variables = variables
        self.error = nil
        self.pausedFrom = nil
        self.due = nil
        self.attempt = 0
        self.awaitKey = nil
        self.deferred = []
        self.auditHead = Run.genesis
        self.auditCount = 0
    }

    /// Makes the run terminal: no current step, nothing remaining, no timer, no awaited action, not paused.
    public mutating func end(_ terminal: RunStatus, outcome: String?) {
        status = terminal
        self.outcome = outcome
        currentStep = nil
        stepsRemaining = 0
        due = nil
        awaitKey = nil
        pausedFrom = nil
    }

    /// The `ExecutionRun` as it travels on the wire: dates as ISO-8601 UTC with milliseconds.
    public var wire: JSONValue {
        .object([
            "id": .string(id),
            "planId": .string(planId),
            "planVersion": .int(planVersion),
            "contactId": .string(contactId),
            "status": .string(status.rawValue),
            "currentStep": currentStep.json,
            "stepsCompleted": .int(stepsCompleted),
            "stepsRemaining": .int(stepsRemaining),
            "startTick": .int(startTick),
            "currentTick": .int(currentTick),
            "startedAt": .string(Timestamp.iso(startedAt)),
            "completedAt": completedAt.map { .string(Timestamp.iso($0)) } ?? .null,
            "outcome": outcome.json,
            "variables": .object(variables),
            "error": error.json,
        ])
    }

    // MARK: - Storage form: one Redis hash per run, one field per attribute, absent when null.

    /// Every stored field; nil values are to be deleted from the hash.
    public var storedFields: [(String, String?)] {
        [
            ("id", id), ("planId", planId), ("planVersion", String(planVersion)), ("contactId", contactId),
            ("status", status.rawValue), ("currentStep", currentStep),
            ("stepsCompleted", String(stepsCompleted)), ("stepsRemaining", String(stepsRemaining)),
            ("startTick", String(startTick)), ("currentTick", String(currentTick)),
            ("startedAt", String(startedAt)), ("completedAt", completedAt.map { String($0) }),
            ("outcome", outcome), ("variables", JSONValue.object(variables).canonical), ("error", error),
            ("contact", JSONValue.object(contact).canonical), ("pausedFrom", pausedFrom?.rawValue),
            ("due", due.map { String($0) }), ("attempt", attempt == 0 ? nil : String(attempt)),
            ("awaitKey", awaitKey), ("deferred", deferred.isEmpty ? nil : JSONValue.array(deferred).canonical),
            ("auditHead", auditHead), ("auditCount", String(auditCount)),
        ]
    }

    /// Reads a run back from its hash. Nil when required fields are missing or malformed.
    public init?(fields f: [String: String]) {
        guard let id = f["id"], let planId = f["planId"], let v = f["planVersion"].flatMap({ Int($0) }),
            let contactId = f["contactId"], let status = f["status"].flatMap(RunStatus.init(rawValue:)),
            let startTick = f["startTick"].flatMap({ Int($0) }), let startedAt = f["startedAt"].flatMap({ Int64($0) })
        else { return nil }
        self.init(
            id: id, planId: planId, planVersion: v, contactId: contactId,
            contact: f["contact"].flatMap(JSONValue.parse)?.object ?? [:], status: status,
            currentStep: f["currentStep"], stepsRemaining: f["stepsRemaining"].flatMap { Int($0) } ?? 0,
            startTick: startTick, startedAt: startedAt,
            variables: f["variables"].flatMap(JSONValue.parse)?.object ?? [:])
        stepsCompleted = f["stepsCompleted"].flatMap { Int($0) } ?? 0
        currentTick = f["currentTick"].flatMap { Int($0) } ?? startTick
        completedAt = f["completedAt"].flatMap { Int64($0) }
        outcome = f["outcome"]
        error = f["error"]
        pausedFrom = f["pausedFrom"].flatMap(RunStatus.init(rawValue:))
        due = f["due"].flatMap { Int($0) }
        attempt = f["attempt"].flatMap { Int($0) } ?? 0
        awaitKey = f["awaitKey"]
        deferred = f["deferred"].flatMap(JSONValue.parse)?.array ?? []
        auditHead = f["auditHead"] ?? Run.genesis
        auditCount = f["auditCount"].flatMap { Int($0) } ?? 0
    }
}
