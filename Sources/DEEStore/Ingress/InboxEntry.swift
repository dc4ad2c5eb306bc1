/// A command as the router writes it into a partition's inbox and the owner reads it: one type shared by both, so
/// the two sides cannot drift apart on a field name. The inbox entry's id is the ingress entry's id.
public struct InboxEntry: Sendable, Equatable {
    public var type: String
    /// The producer's requestId, if it gave one.
    public var requestId: String?
    /// The fingerprint of the type and the decoded arguments (a reused requestId must match it).
    public var fingerprint: String
    public var replyTo: String?
    public var actor: String?
    /// The arguments as canonical JSON (for a bulkExecute: this partition's share of the contacts).
    public var args: String
    /// How many partitions the command was sent to, and which (when more than one).
    public var parts: Int
    public var targets: [Int]?
    /// The plan version the router resolved (execute, bulkExecute), or the error that resolving it gave.
    public var planVersion: Int?
    public var failure: String?
    /// A bulkExecute share's contacts' indexes in the whole command, as a JSON array.
    public var indexes: String?

    public init(
        type: String, requestId: String?, fingerprint: String, replyTo: String?, actor: String?, args: String,
        parts: Int = 1, targets: [Int]? = nil, planVersion: Int? = nil, failure: String? = nil, indexes: String? = nil
    ) {
        self.type = type
        self.requestId = requestId
        self.fingerprint = fingerprint
        self.replyTo = replyTo
        self.actor = actor
        self.args = args
        self.parts = parts
        self.targets = targets
        self.planVersion = planVersion
        self.failure = failure
        self.indexes = indexes
    }

    /// Reads an inbox entry's fields; nil when it has no type (not written by a router).
    public init?(fields: [String: String]) {
        guard let type = fields["type"], !type.isEmpty else { return nil }
        func text(_ k: String) -> String? { fields[k].flatMap { $0.isEmpty ? nil : $0 } }
        self.init(
            type: type, requestId: text("rid"), fingerprint: fields["fp"] ?? "", replyTo: text("replyTo"),
            actor: text("actor"), args: fields["args"] ?? "{}", parts: fields["parts"].flatMap { Int($0) } ?? 1,
            targets: text("targets").map { $0.split(separator: ",").compactMap { Int($0) } },
            planVersion: fields["planVersion"].flatMap { Int($0) }, failure: text("fail"), indexes: text("indexes"))
    }

    /// The entry's fields, as `XADD` takes them. A field at its default (no requestId, replyTo or actor; one
    /// partition) is left out: ``init(fields:)`` reads an absent one as the default, as every earlier version did,
    /// and each field costs the router's append script and the owner's read.
    public var fields: [String] {
        var f = ["type", type]
        if let requestId { f += ["rid", requestId] }
        f += ["fp", fingerprint]
        if let replyTo { f += ["replyTo", replyTo] }
        if let actor { f += ["actor", actor] }
        f += ["args", args]
        if parts != 1 { f += ["parts", String(parts)] }
        if let targets { f += ["targets", targets.map(String.init).joined(separator: ",")] }
        if let planVersion { f += ["planVersion", String(planVersion)] }
        if let failure { f += ["fail", failure] }
        if let indexes { f += ["indexes", indexes] }
        return f
    }
}
