import DEECore
import Redis
import Synchronization

/// The plan registry (`<prefix>:{plans}:…`) with a cache of parsed versions: versions never change once
/// registered, so a cached one is never stale.
public final class PlanStore: Sendable {
    public let keys: Keys
    private let cache = Mutex<[String: Plan]>([:])

    public init(keys: Keys) { self.keys = keys }

    /// Registers `plan`; returns its version and whether it was created, or the record stored earlier for this
    /// request key.
    public func register(
        _ plan: Plan, requestKey: String, fingerprint: String, ttl: Int, _ redis: any RedisCommands
    ) throws -> (version: Int, created: Bool, stored: String?) {
        let reply = try redis.evalScript(
            RegisterPlanScript.source,
            keys: [keys.plan(plan.id), keys.planIds, keys.planRequest(requestKey)],
            arguments: [plan.contentHash, plan.canonicalJSON, plan.name, plan.id, fingerprint, String(ttl)])
        if case .error(let e) = reply { throw RedisError(.server, "register script: \(e)") }
        guard let items = reply.array, items.count == 3, let v = items[0].int, let c = items[1].int else {
            throw RedisError(.unexpectedReply, "register script answered \(reply)")
        }
        let stored = items[2].string ?? ""
        if !stored.isEmpty { return (0, false, stored) }
        cache.withLock { $0["\(plan.id):\(v)"] = plan }
        return (v, c == 1, nil)
    }

    /// Registers a plan given inline to `execute`/`bulkExecute` (no request record): its version. As for
    /// `registerPlan` (SPEC 2), the latest version when the content equals it, else a new version, even when an
    /// older version has this content. One small read when it is the latest; the script only when it is not.
    public func registerImplicitly(_ plan: Plan, _ redis: any RedisCommands) throws -> Int {
        let known = try redis.call(["HMGET", keys.plan(plan.id), "latest", "h:" + plan.contentHash]).array ?? []
        if known.count == 2, let latest = known[0].int, known[1].int == latest {
            cache.withLock { $0["\(plan.id):\(latest)"] = plan }
            return latest
        }
        let reply = try redis.evalScript(
            RegisterPlanScript.source, keys: [keys.plan(plan.id), keys.planIds],
            arguments: [plan.contentHash, plan.canonicalJSON, plan.name, plan.id, "", "0"])
        if case .error(let e) = reply { throw RedisError(.server, "register script: \(e)") }
        guard let items = reply.array, items.count == 3, let v = items[0].int, v > 0 else {
            throw RedisError(.unexpectedReply, "register script answered \(reply)")
        }
        cache.withLock { $0["\(plan.id):\(v)"] = plan }
        return v
    }

    /// The latest version number of a plan, or nil when it is not registered.
    public func latestVersion(_ planId: String, _ redis: any RedisCommands) throws -> Int? {
        try redis.call(["HGET", keys.plan(planId), "latest"]).int
    }

    /// A plan version if it is in the cache; never touches Redis.
    public func cached(_ planId: String, version: Int) -> Plan? {
        cache.withLock { $0["\(planId):\(version)"] }
    }

    /// A plan version, parsed; nil when it does not exist.
    public func load(_ planId: String, version: Int, _ redis: any RedisCommands) throws -> Plan? {
        let cacheKey = "\(planId):\(version)"
        if let cached = cache.withLock({ $0[cacheKey] }) { return cached }
        guard let text = try redis.call(["HGET", keys.plan(planId), "v\(version)"]).string,
            let json = JSONValue.parse(text), let plan = try? Plan.parse(json)
        else { return nil }
        cache.withLock { $0[cacheKey] = plan }
        return plan
    }

    /// `[{planId, name, latestVersion}]`, by plan id.
    public func list(_ redis: any RedisCommands) throws -> [JSONValue] {
        let ids = (try redis.call(["SMEMBERS", keys.planIds]).array ?? []).compactMap(\.string).sorted()
        if ids.isEmpty { return [] }
        let replies = try redis.pipeline(ids.map { ["HMGET", keys.plan($0), "name", "latest"] })
        return zip(ids, replies).map { id, reply in
            let items = reply.array ?? []
            return [
                "planId": .string(id), "name": .string(items.first?.string ?? id),
                "latestVersion": .int(items.count > 1 ? items[1].int ?? 0 : 0),
            ]
        }
    }

    public func count(_ redis: any RedisCommands) throws -> Int {
        try redis.call(["SCARD", keys.planIds]).int ?? 0
    }
}
