// Fuzz target "plan": the JSON parser and the plan validator, and every plan the validator accepts is run through
// the pure core (ticks, signals, action results, pause/resume) and replayed from its audit log.
//
//   input: any bytes, read as UTF-8 (invalid sequences become U+FFFD, as a Redis field decoded to a String does).

@_cdecl("LLVMFuzzerTestOneInput")
public func planFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    var rng = InputRandom(bytes)
    let text = String(decoding: bytes, as: UTF8.self)
    guard let json = JSONValue.parse(text) else { return 0 }
    checkCanonical(json)
    let plan: Plan
    do {
        plan = try Plan.parse(json)
    } catch {
        guard error.code == .planInvalid else { violated("Plan.parse threw \(error.code.rawValue)", error.message) }
        checkError(error)
        return 0
    }
    guard !plan.steps.isEmpty, plan.step(plan.entry.id) != nil else { violated("a plan without an entry step") }
    for s in plan.steps {
        for n in s.successors where plan.step(n) == nil { violated("step \(s.id) names a missing successor \(n)") }
        guard plan.stepsRemaining(from: s.id) >= 1 else { violated("step \(s.id) has no steps remaining") }
    }
    guard plan.canonicalJSON == json.canonical, plan.contentHash.utf8.count == 64 else {
        violated("a plan's canonical form or hash is off")
    }
    // Registering the stored form again is the same plan (the same version, SPEC 2).
    guard let again = JSONValue.parse(plan.canonicalJSON), let plan2 = try? Plan.parse(again),
        plan2.contentHash == plan.contentHash
    else { violated("a plan's canonical form does not parse to the same plan", plan.canonicalJSON) }
    let clocks = [0, 1, 1_000, 2_147_483_647]
    simulate(plan, &rng, startClock: clocks[rng.below(clocks.count)])
    return 0
}
