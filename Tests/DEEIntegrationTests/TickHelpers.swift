import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// Helpers for the tick, signal, action, replay and crash tests.

/// A plan's JSON text from its id, steps and optional exitOn.
func planText(_ id: String, exitOn: [String]? = nil, _ steps: [[String: Any]]) -> String {
    var o: [String: Any] = ["id": id, "name": id, "steps": steps]
    if let exitOn { o["exitOn"] = exitOn }
    return js(o)
}

/// Step builders.
func actionStep(_ id: String, _ action: String = "send_email", params: [String: Any] = [:], extra: [String: Any] = [:])
    -> [String: Any]
{
    var o: [String: Any] = ["id": id, "type": "action", "action": action, "params": params]
    for (k, v) in extra { o[k] = v }
    return o
}
func waitStep(_ id: String, _ ticks: Int) -> [String: Any] { ["id": id, "type": "wait", "ticks": ticks] }
func endStep(_ id: String, _ outcome: String) -> [String: Any] { ["id": id, "type": "end", "outcome": outcome] }
func listenStep(_ id: String, _ signal: String, timeout: Int? = nil, onSignal: String? = nil, onTimeout: String? = nil)
    -> [String: Any]
{
    var o: [String: Any] = ["id": id, "type": "waitForSignal", "signal": signal]
    if let timeout { o["timeoutTicks"] = timeout }
    if let onSignal { o["onSignal"] = onSignal }
    if let onTimeout { o["onTimeout"] = onTimeout }
    return o
}

/// A run as the engine answers it, with typed accessors.
struct RunView {
    let o: [String: Any]
    init(_ o: [String: Any]) { self.o = o }
    var id: String? { o["id"] as? String }
    var status: String? { o["status"] as? String }
    /// nil when JSON null or absent; `isNull("currentStep")` tells null apart from absent.
    var currentStep: String? { o["currentStep"] as? String }
    var stepsCompleted: Int? { o["stepsCompleted"] as? Int }
    var stepsRemaining: Int? { o["stepsRemaining"] as? Int }
    var startTick: Int? { o["startTick"] as? Int }
    var currentTick: Int? { o["currentTick"] as? Int }
    var outcome: String? { o["outcome"] as? String }
    var error: String? { o["error"] as? String }
    var variables: [String: Any] { (o["variables"] as? [String: Any]) ?? [:] }
    func isNull(_ key: String) -> Bool { o[key] is NSNull }
    var summary: String { js(o) }
}

extension DEEClient {
    /// Sends `tick {count}` and returns `(tick, stepped)`; expects success.
    @discardableResult
    func advanceClock(_ count: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) throws -> (tick: Int, stepped: Int) {
        let r = try call("tick", ["count": String(count)], timeout: 60)
        #expect(r.ok, "\(r.fields)", sourceLocation: sourceLocation)
        let tick = try #require(r.object["tick"] as? Int, "\(r.fields)", sourceLocation: sourceLocation)
        let stepped = try #require(r.object["stepped"] as? Int, "\(r.fields)", sourceLocation: sourceLocation)
        return (tick, stepped)
    }

    /// Executes `planId` for a contact object (with "id"); returns the run as answered. Expects success.
    func startRun(
        _ planId: String, contact: [String: Any], variables: [String: Any]? = nil, startTick: Int? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> RunView {
        var fields = ["planId": planId, "contact": js(contact)]
        if let variables { fields["variables"] = js(variables) }
        if let startTick { fields["startTick"] = String(startTick) }
        let r = try call("execute", fields)
        #expect(r.ok, "\(r.fields)", sourceLocation: sourceLocation)
        _ = try #require(r.object["id"] as? String, "\(r.fields)", sourceLocation: sourceLocation)
        return RunView(r.object)
    }

    func runView(_ runId: String) throws -> RunView { RunView(try call("getRun", ["runId": runId]).object) }

    /// Sends a signal; returns the reply.
    func sendSignal(
        contactId: String? = nil, runId: String? = nil, _ name: String, data: [String: Any]? = nil, planId: String? = nil
    ) throws -> DEEReply {
        var fields = ["name": name]
        if let contactId { fields["contactId"] = contactId }
        if let runId { fields["runId"] = runId }
        if let data { fields["data"] = js(data) }
        if let planId { fields["planId"] = planId }
        return try call("signal", fields)
    }

    func sendActionResult(_ runId: String, key: String, ok: Bool, error: String? = nil, data: [String: Any]? = nil) throws
        -> DEEReply
    {
        var fields = ["runId": runId, "idempotencyKey": key, "ok": ok ? "true" : "false"]
        if let error { fields["error"] = error }
        if let data { fields["data"] = js(data) }
        return try call("actionResult", fields)
    }
}

extension TestEngine.Env {
    /// The events stream of partition p, oldest first (fields only).
    func runEvents(_ p: Int = 0) throws -> [[String: String]] { try stream("{\(p)}:events").map(\.fields) }
    /// The actions stream of partition p, oldest first (fields only).
    func actionRequests(_ p: Int = 0) throws -> [[String: String]] { try stream("{\(p)}:actions").map(\.fields) }
}

/// An action request's params, parsed.
func paramsOf(_ request: [String: String]) -> [String: JSONValue] {
    request["params"].flatMap(JSONValue.parse)?.object ?? [:]
}

func isHex32(_ s: String?) -> Bool {
    guard let s else { return false }
    return s.count == 32 && s.allSatisfy { "0123456789abcdef".contains($0) }
}
