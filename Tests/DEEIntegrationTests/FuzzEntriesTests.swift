import DEEClient
import DEECore
import DEEService
import Foundation
import Redis
import Testing

/// End-to-end fuzzing of the ingress stream (SPEC 5): a seeded generator XADDs random and mutated entries (wrong
/// types, huge fields, deep JSON, invalid UTF-8, key-breaking ids, numbers at every integer boundary, plans with
/// extreme values, a few valid commands between them) to a real engine. Afterwards the engine still answers, every
/// entry that named a usable `replyTo` got a reply (an error for every rejected one), no rejected entry created a
/// run or a plan, and no reply was written into the engine's own key space.
///
///   DEE_FUZZ_ENTRIES=100000 DEE_FUZZ_SEED=7 swift test --filter FuzzEntriesTests
///
/// Defaults: 3,000 entries (a few seconds), seed 20261123. A failure prints the seed and the entry ids at fault.
@Suite(.serialized) struct FuzzEntriesTests {
    @Test func randomAndMutatedEntries() async throws {
        let environment = ProcessInfo.processInfo.environment
        let count = environment["DEE_FUZZ_ENTRIES"].flatMap { Int($0) } ?? 3_000
        let seed = environment["DEE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_123
        try await TestEngine.with(configure: { config in
            // Keep every reply and rejection for the checks (the defaults trim at 10,000 and 100,000).
            config.replyMaxLen = 100_000_000
            config.rejectedMaxLen = 100_000_000
        }) { client, env in
            try FuzzRun(client: client, env: env, count: count, seed: seed).run()
        }
    }
}

/// One entry as generated: byte fields (sent with XADD when they are UTF-8, else through a script that decodes
/// hex), and what the checks need to know about it.
struct FuzzEntry {
    var fields: [([UInt8], [UInt8])]
    /// The reply stream it names, when a reply can be expected there.
    var replyTo: String?
    /// What it is, for the report.
    var kind: String

    var isUTF8: Bool { fields.allSatisfy { String(validating: $0.0, as: UTF8.self) != nil && String(validating: $0.1, as: UTF8.self) != nil } }
}

/// SplitMix64: seeded, deterministic, the same entries on every machine.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Builds the entries.
struct EntryGenerator {
    var rng: SeededRandom
    let prefix: String
    let replyStream: String
    let baseRunId: String
    var serial = 0

    static let commands = RequestDecoder.commandNames
    static let argNames = [
        "plan", "planId", "planVersion", "contact", "variables", "startTick", "contacts", "batchSize", "runId",
        "status", "contactId", "startedAfter", "startedBefore", "limit", "offset", "reason", "filters", "count", "name",
        "data", "idempotencyKey", "ok", "error", "version",
    ]
    static let intArgs = ["limit", "offset", "count", "startTick", "version", "planVersion", "batchSize"]
    /// Numbers at every integer boundary, and number-like text that is not a whole number.
    static let numbers = [
        "-9223372036854775809", "-9223372036854775808", "-4294967296", "-2147483649", "-2147483648", "-1", "-0", "0",
        "1", "2", "127", "128", "255", "256", "1000", "1001", "10000", "10001", "32767", "32768", "65535", "65536",
        "99999", "100000", "100001", "2147483646", "2147483647", "2147483648", "4294967295", "4294967296",
        "9007199254740991", "9007199254740992", "9007199254740993", "9223372036854775806", "9223372036854775807",
        "9223372036854775808", "18446744073709551615", "18446744073709551616", "1e308", "1e309", "-1e309", "1.0",
        "1.5", "2147483647.0", "2.147483647e9", "9.3e18", "1e-400", "0.1e1", "-0.0", "00", "01", "+1", " 1", "1 ",
        "0x10", "1_000", "NaN", "Infinity", "-Infinity", "١", "", "-", "1e", "\"5\"", "[1]", "true", "null",
    ]
    /// Ids that must never become parts of keys.
    static let badIds = [
        "", " ", "a b", "a:b", "{0}", "x}", "{", ":", "::", "a\nb", "a\rb", "a\tb", "*", "?", "[a]", "a/b", "../x",
        "dee:{0}:run:x", "é", "a\u{0}b", "\u{202E}rtl", "\u{FEFF}", "\u{FFFE}", "😀", "a\u{301}",
        String(repeating: "a", count: 129), String(repeating: "a", count: 128) + "é",
        "1795465714287-000000-00000-{1}", "1795465714287-000000-00000-0:x",
    ]
    static let goodIds = ["a", "A.b_c-d@e+f", String(repeating: "z", count: 128), "0", "c-1", "welcome"]
    static let statuses = ["active", "waiting", "paused", "pending", "completed", "failed", "cancelled", "Active", "bogus"]

    init(seed: UInt64, prefix: String, replyStream: String, baseRunId: String) {
        rng = SeededRandom(seed)
        self.prefix = prefix
        self.replyStream = replyStream
        self.baseRunId = baseRunId
    }

    /// Replies may not go into the engine's key space: these must be refused, and checked to be untouched.
    var forbiddenReplyTos: [String] { Array(keyTypes.keys).sorted() }

    /// The types those keys may have afterwards (none: absent). The clock and P:rejected appear with the first
    /// tick and rejection; a reply written to any of them would make it a stream or fail (WRONGTYPE).
    var keyTypes: [String: Set<String>] {
        ["\(prefix):commands": ["stream"], "\(prefix):meta": ["hash"], "\(prefix):{0}:run:\(baseRunId)": ["hash"],
         "\(prefix):{0}:clock": ["none", "string"], "\(prefix):rejected": ["none", "stream"],
         "\(prefix):{plans}:ids": ["set"], "\(prefix):replies": ["none"], "\(prefix):{0}:enroll": ["hash", "none"],
         String(repeating: "r", count: 513): ["none"]]
    }

    // MARK: JSON pieces

    func deep(_ depth: Int, object: Bool) -> String {
        object
            ? String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
            : String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
    }

    mutating func hugeText() -> String {
        let size = rng.chance(70) ? 100_000 + rng.below(200_000) : 300_000 + rng.below(750_000)
        switch rng.below(4) {
        case 0: return String(repeating: "x", count: size)
        case 1: return "[" + Array(repeating: "2147483648", count: size / 11).joined(separator: ",") + "]"
        case 2: return "{\"id\":\"c\",\"blob\":\"" + String(repeating: "é", count: size / 2) + "\"}"
        default: return "\"" + String(repeating: "\\u0000", count: size / 6) + "\""
        }
    }

    /// A JSON value of any type, sometimes awkward.
    mutating func anyJSON(_ depth: Int = 0) -> String {
        switch rng.below(depth > 3 ? 6 : 9) {
        case 0: return "null"
        case 1: return rng.pick(["true", "false"])
        case 2: return rng.pick(Self.numbers.filter { Double($0.trimmingCharacters(in: .whitespaces)) != nil && !$0.hasPrefix(" ") })
        case 3: return js(rng.pick(Self.badIds + Self.goodIds))
        case 4: return js(rng.pick(Self.statuses))
        case 5: return "\"\\ud800\""  // a lone surrogate escape: not JSON the parser takes
        case 6: return "[" + (0..<rng.below(4)).map { _ in anyJSON(depth + 1) }.joined(separator: ",") + "]"
        case 7:
            return "{" + (0..<rng.below(4)).map { _ in js(rng.pick(Self.argNames + ["id", "type", "steps"])) + ":" + anyJSON(depth + 1) }
                .joined(separator: ",") + "}"
        default: return deep(rng.pick([513, 1_000, 10_000]), object: rng.chance(50))
        }
    }

    // MARK: Plans

    mutating func step(_ i: Int) -> [String: Any] {
        let id = "s\(i)"
        switch rng.below(5) {
        case 0: return ["id": id, "type": "wait", "ticks": rng.pick([1, 2, 2_147_483_647])]
        case 1:
            return ["id": id, "type": "action", "action": "send", "params": ["to": "{{contact.email}}", "v": "{{vars.x}}"],
                    "await": rng.chance(50), "timeoutTicks": rng.pick([1, 2_147_483_647]), "retries": rng.pick([0, 100])]
        case 2: return ["id": id, "type": "waitForSignal", "signal": "go", "timeoutTicks": rng.pick([1, 3, 2_147_483_647])]
        case 3:
            return ["id": id, "type": "branch", "default": "end",
                    "cases": [["when": ["var": "contact.tier", "op": "eq", "value": "gold"], "next": "end"]]]
        default: return ["id": id, "type": "action", "action": "a\(i)"]
        }
    }

    /// A valid plan: a few steps then an end, with values up to the largest allowed.
    mutating func validPlan(_ id: String) -> String {
        let n = 1 + rng.below(5)
        let steps = (0..<n).map { step($0) } + [["id": "end", "type": "end", "outcome": "done"]]
        return js(["id": id, "name": "fuzz \(id)", "exitOn": ["stop"], "steps": steps])
    }

    /// A plan the validator must refuse. Its id starts with `inv-`: no plan with that id may ever be registered.
    mutating func invalidPlan() -> String {
        let id = "inv-\(rng.below(50))"
        let end: [String: Any] = ["id": "end", "type": "end"]
        let big = rng.pick(Self.numbers)
        switch rng.below(16) {
        case 0: return #"{"id":"\#(id)","steps":[{"id":"w","type":"wait","ticks":\#(rng.pick(["0", "-1", "2147483648", "9223372036854775807", "9223372036854775808", "1e400", "1.5", "\"3\"", "null"]))},{"id":"end","type":"end"}]}"#
        case 1: return #"{"id":"\#(id)","steps":[{"id":"a","type":"action","action":"x","await":true,"timeoutTicks":\#(rng.pick(["0", "2147483648", "-2147483648", "9223372036854775807", "1e10"]))},{"id":"end","type":"end"}]}"#
        case 2: return #"{"id":"\#(id)","steps":[{"id":"a","type":"action","action":"x","await":true,"timeoutTicks":1,"retries":\#(rng.pick(["101", "-1", "2147483647", "9223372036854775807", "1.5"]))},{"id":"end","type":"end"}]}"#
        case 3: return #"{"id":"\#(id)","steps":[{"id":"s","type":"waitForSignal","signal":"go","timeoutTicks":\#(rng.pick(["0", "2147483648", "-9223372036854775808", "18446744073709551616"]))},{"id":"end","type":"end"}]}"#
        case 4: return #"{"id":"\#(id)","version":\#(rng.pick(["-1", "2147483648", "9223372036854775808", "\"1\"", "1.5"])),"steps":[{"id":"end","type":"end"}]}"#
        case 5: return js(["id": id, "steps": [["id": "a", "type": "wait", "ticks": 1, "next": "a"], end]])  // loops
        case 6: return js(["id": id, "steps": [["id": "a", "type": "wait", "ticks": 1, "next": "nowhere"], end]])
        case 7: return js(["id": id, "steps": [end, end]])  // duplicate ids
        case 8: return js(["id": id, "steps": [["id": rng.pick(Self.badIds), "type": "end"]]])
        case 9: return js(["id": rng.pick(Self.badIds), "steps": [end]])
        case 10: return js(["id": id, "steps": [] as [Any]])
        case 11: return js(["id": id, "steps": [["id": "a", "type": "teleport"], end]])
        case 12:
            // More steps than allowed (10,001), each valid on its own.
            return #"{"id":"\#(id)","steps":["# + (0..<10_000).map { #"{"id":"w\#($0)","type":"wait","ticks":1}"# }.joined(separator: ",")
                + #",{"id":"end","type":"end"}]}"#
        case 13: return #"{"id":"\#(id)","steps":[{"id":"a","type":"action","action":"x","params":\#(deep(10_000, object: rng.chance(50)))},{"id":"end","type":"end"}]}"#
        case 14: return #"{"id":"\#(id)","steps":[{"id":"a","type":"wait","ticks":\#(big)},{"id":"b","type":"branch","cases":[{"when":{"var":"x","op":"in","value":1},"next":"end"}]},{"id":"end","type":"end"}]}"#
        default: return #"{"id":"\#(id)","steps":[{"id":"a","type":"wait","ticks":1}]}"#  // no end reachable
        }
    }

    // MARK: Entries

    mutating func fieldValue(_ name: String) -> String {
        switch rng.below(12) {
        case 0: return rng.pick(Self.numbers)
        case 1: return rng.pick(Self.badIds)
        case 2: return rng.pick(Self.goodIds)
        case 3: return rng.chance(50) ? validPlan("mut-\(rng.below(20))") : invalidPlan()
        case 4: return contactJSON()
        case 5: return deep(rng.pick([512, 513, 10_000]), object: rng.chance(50))
        case 6: return rng.pick(Self.statuses)
        case 7: return js(Array(Self.statuses.prefix(1 + rng.below(9))))
        case 8: return rng.chance(50) ? baseRunId : "1795465714287-000000-00000-" + rng.pick(["0", "1", "99", "-1", "+0", "9223372036854775808"])
        case 9: return rng.pick(["2026-11-23T10:00:00.000Z", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z", "yesterday", "-62135596800001"])
        case 10: return anyJSON()
        default: return name == "ok" ? rng.pick(["true", "false", "1", "yes"]) : "{\"k\":" + anyJSON() + "}"
        }
    }

    mutating func contactJSON() -> String {
        switch rng.below(6) {
        case 0: return js(["id": rng.pick(Self.badIds)])
        case 1: return js(["email": "no-id@example.com"])
        case 2: return #"{"id":\#(rng.pick(["1", "null", "true", "[]", "{}"]))}"#
        case 3: return #"{"id":"c-\#(rng.below(1000))","deep":\#(deep(rng.pick([100, 511, 10_000]), object: false))}"#
        default: return js(["id": "c-\(rng.below(1000))", "tier": rng.pick(["gold", "silver"]), "n": Int.max])
        }
    }

    /// Several valid commands, so that the engine has state to protect and work to do between the garbage.
    mutating func validCommand() -> [(String, String)] {
        switch rng.below(8) {
        case 0: return [("type", "registerPlan"), ("plan", validPlan("ok-\(rng.below(10))"))]
        case 1, 2: return [("type", "execute"), ("planId", "welcome"), ("contact", contact("v-\(rng.below(1_000_000))"))]
        case 3: return [("type", "listRuns"), ("status", "active"), ("limit", "1000")]
        case 4: return [("type", "getRun"), ("runId", baseRunId)]
        case 5: return [("type", "tick"), ("count", rng.pick(["1", "2"]))]
        case 6: return [("type", "signal"), ("contactId", "v-1"), ("name", "go")]
        default: return [("type", "stats")]
        }
    }

    /// Fields of a structured entry: a command name (or not), arguments of any kind.
    mutating func structured() -> (fields: [(String, String)], kind: String) {
        let type: String = rng.chance(90) ? rng.pick(Self.commands) : rng.pick(["", "Execute", "execute ", "nope", "registerplan", "\u{0}", "😀", String(repeating: "t", count: 10_000)])
        var fields: [(String, String)] = rng.chance(97) ? [("type", type)] : []
        var kind = "fields"
        switch rng.below(10) {
        case 0:
            // One args JSON object, of awkward content.
            kind = "args"
            var members: [String] = []
            for _ in 0..<rng.below(6) { members.append(js(rng.pick(Self.argNames)) + ":" + (rng.chance(50) ? anyJSON() : js(fieldValue("x")))) }
            let body = rng.chance(85) ? "{" + members.joined(separator: ",") + "}" : rng.pick(["[]", "null", "\"{}\"", "{", "{\"a\":1}x", deep(10_000, object: true)])
            fields.append(("args", body))
            if rng.chance(10) { fields.append((rng.pick(Self.argNames), "1")) }  // args and fields both
        case 1:
            kind = "numbers"
            for _ in 0..<(1 + rng.below(3)) { fields.append((rng.pick(Self.intArgs), rng.pick(Self.numbers))) }
        case 2:
            kind = "plan"
            fields.append(("plan", invalidPlan()))
            if rng.chance(50) { fields.append(("contact", contactJSON())) }
        case 3:
            kind = "ids"
            let names = ["runId", "planId", "contactId", "name", "idempotencyKey"].shuffled(using: &rng)
            for name in names.prefix(1 + rng.below(3)) {
                fields.append((name, rng.pick(Self.badIds)))
            }
            if rng.chance(30) { fields.append(("contact", js(["id": rng.pick(Self.badIds)]))) }
        case 4:
            kind = "envelope"
            fields.append((rng.pick(["requestId", "actor", "replyTo"]), rng.pick(Self.badIds + [String(repeating: "q", count: 300)])))
        case 5:
            kind = "duplicate"
            let name = rng.pick(Self.argNames + ["type"])
            fields.append((name, "1"))
            fields.append((name, "2"))
        default:
            kind = "fields"
            for _ in 0..<rng.below(7) {
                let name = rng.chance(90) ? rng.pick(Self.argNames) : rng.pick(["", "args ", "Type", "x", "\u{0}", "é"])
                fields.append((name, fieldValue(name)))
            }
        }
        if rng.chance(8) { fields.append(("requestId", rng.pick(["r-1", "r-2", String(repeating: "r", count: 128), String(repeating: "r", count: 129)]))) }
        return (fields, kind)
    }

    /// Byte-level damage: flips, cuts, inserted invalid UTF-8 (bytes no String can hold), dropped or repeated fields.
    mutating func mutate(_ fields: [([UInt8], [UInt8])]) -> [([UInt8], [UInt8])] {
        var f = fields
        let invalid: [[UInt8]] = [[0xFF], [0xFE, 0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xF0, 0x9F, 0x98]]
        for _ in 0..<(1 + rng.below(4)) {
            guard !f.isEmpty else { break }
            let i = rng.below(f.count)
            let key = rng.chance(15)
            var bytes = key ? f[i].0 : f[i].1
            switch rng.below(8) {
            case 0: if !bytes.isEmpty { bytes[rng.below(bytes.count)] ^= UInt8(1 << rng.below(8)) }
            case 1: bytes.insert(contentsOf: rng.pick(invalid), at: rng.below(bytes.count + 1))
            case 2: if !bytes.isEmpty { bytes.removeSubrange(rng.below(bytes.count)..<bytes.count) }
            case 3: if !bytes.isEmpty { let a = rng.below(bytes.count); bytes.removeSubrange(a..<min(bytes.count, a + 1 + rng.below(8))) }
            case 4: bytes.insert(contentsOf: Array(rng.pick(["{", "}", ":", "\"", "\\", ",", "[", "]", "\\u", "null", "9223372036854775808", "\u{0}"]).utf8), at: rng.below(bytes.count + 1))
            case 5: f.remove(at: i); continue
            case 6: f.append(f[i]); continue
            default: bytes = Array(rng.pick(Self.numbers + Self.badIds).utf8)
            }
            if key { f[i].0 = bytes } else { f[i].1 = bytes }
        }
        return f
    }

    /// The next entry.
    mutating func next() -> FuzzEntry {
        serial += 1
        var entry: FuzzEntry
        let roll = rng.below(100)
        if roll < 6 {
            entry = FuzzEntry(fields: validCommand().map { (Array($0.0.utf8), Array($0.1.utf8)) }, kind: "valid")
        } else if roll < 8 {
            // A huge field (up to ~1 MB), in an argument or the envelope.
            var fields = [("type", rng.pick(["execute", "bulkExecute", "registerPlan", "signal", "stats"]))]
            fields.append((rng.pick(["contact", "contacts", "plan", "data", "variables", "reason", "actor", "requestId", "planId", "args"]), hugeText()))
            if rng.chance(30) { fields.append(("planId", "welcome")) }
            entry = FuzzEntry(fields: fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }, kind: "huge")
        } else if roll < 40 {
            let s = structured()
            entry = FuzzEntry(fields: s.fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }, kind: s.kind)
        } else {
            // A valid command or a structured one, damaged.
            let base = rng.chance(50) ? validCommand() : structured().fields
            entry = FuzzEntry(fields: mutate(base.map { (Array($0.0.utf8), Array($0.1.utf8)) }), kind: "mutated")
            if !entry.isUTF8 { entry.kind = "mutated-utf8" }
        }
        // Half of them ask for a reply, to the test's stream; some others name a stream they may not write to.
        entry.fields.removeAll { $0.0 == Array("replyTo".utf8) && rng.chance(50) }
        let names = entry.fields.filter { $0.0 == Array("replyTo".utf8) }
        if names.isEmpty {
            if rng.chance(50) {
                entry.fields.insert((Array("replyTo".utf8), Array(replyStream.utf8)), at: rng.below(entry.fields.count + 1))
                entry.replyTo = replyStream
            } else if rng.chance(10) {
                entry.fields.append((Array("replyTo".utf8), Array(rng.pick(forbiddenReplyTos).utf8)))
            }
        }
        if entry.fields.isEmpty { entry.fields = [(Array("x".utf8), [])] }  // XADD needs a field
        return entry
    }
}

/// Sends the entries, waits for the engine (bounded), checks.
struct FuzzRun {
    let client: DEEClient
    let env: TestEngine.Env
    let count: Int
    let seed: UInt64

    /// XADDs raw bytes: arguments arrive hex-encoded (RedisConnection sends Strings, always UTF-8).
    static let xaddBytes = """
        local args = {}
        for i = 1, #ARGV do
          args[i] = (ARGV[i]:gsub('..', function(h) return string.char(tonumber(h, 16)) end))
        end
        return redis.call('XADD', KEYS[1], '*', unpack(args))
        """

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0x0F)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads a whole stream in pages (entry id → fields).
    func readStream(_ key: String, after start: String = "-") throws -> [(id: String, fields: [String: String])] {
        var out: [(id: String, fields: [String: String])] = []
        var from = start
        while true {
            let page = try env.redis.call(["XRANGE", key, from, "+", "COUNT", "5000"]).streamEntries
            out += page
            guard page.count == 5000, let last = page.last else { return out }
            from = "(" + last.id
        }
    }

    /// Run ids of the deployment: keys `<prefix>:{<p>}:run:<id>` (by SCAN). The pattern also matches keys that
    /// merely contain `}:run:`, such as `{0}:req:<requestId>` of a requestId `a:{0}:run:x` (requestIds may hold
    /// colons and braces; they stay under `req:`), so the partition must be digits and the id a run id's shape.
    func runIds() throws -> [String] {
        var cursor = "0"
        var ids: [String] = []
        let head = "\(env.prefix):{"
        repeat {
            let r = try env.redis.call(["SCAN", cursor, "MATCH", "\(env.prefix):{*}:run:*", "COUNT", "1000"]).array ?? []
            guard r.count == 2 else { break }
            cursor = r[0].string ?? "0"
            for k in r[1].array ?? [] {
                guard let key = k.string, key.hasPrefix(head) else { continue }
                let rest = key.dropFirst(head.count)
                guard let close = rest.range(of: "}:run:") else { continue }
                let partition = rest[..<close.lowerBound]
                let id = String(rest[close.upperBound...])
                guard !partition.isEmpty, partition.allSatisfy(\.isASCII), partition.allSatisfy(\.isNumber),
                    !id.contains(":"), !id.contains("{")
                else { continue }
                ids.append(id)
            }
        } while cursor != "0"
        return ids
    }

    func lag() throws -> Int {
        let groups = try env.redis.call(["XINFO", "GROUPS", env.key("commands")]).array ?? []
        var total = 0
        for g in groups {
            let items = g.array ?? []
            var i = 0
            while i + 1 < items.count {
                if items[i].string == "lag" || items[i].string == "pending" { total += items[i + 1].int ?? 0 }
                i += 2
            }
        }
        return total
    }

    func run() throws {
        let started = Date()
        let replyStream = env.key("replies:fuzz")
        try client.register(examplePlan)
        let baseRunId = try client.run("welcome", "base")
        let plansBefore = Set((try env.redis.call(["SMEMBERS", env.key("{plans}:ids")]).array ?? []).compactMap(\.string))
        var generator = EntryGenerator(seed: seed, prefix: env.prefix, replyStream: replyStream, baseRunId: baseRunId)
        let forbidden = generator.forbiddenReplyTos
        let runsBefore = Set(try runIds())

        // 1. Send, in pipelined batches, never far ahead of the engine (the huge entries add up).
        var sent: [(id: String, entry: FuzzEntry)] = []
        sent.reserveCapacity(count)
        var kinds: [String: Int] = [:]
        var bytesSent = 0
        var batch: [[String]] = []
        var pending: [FuzzEntry] = []
        func flush() throws {
            guard !batch.isEmpty else { return }
            let replies = try env.redis.pipeline(batch)
            for (r, e) in zip(replies, pending) {
                guard let id = r.string, EntryID(id) != nil else {
                    Issue.record("XADD of a \(e.kind) entry failed: \(r)")
                    continue
                }
                sent.append((id, e))
            }
            batch = []
            pending = []
        }
        for _ in 0..<count {
            let e = generator.next()
            kinds[e.kind, default: 0] += 1
            let size = e.fields.reduce(0) { $0 + $1.0.count + $1.1.count }
            bytesSent += size
            if e.isUTF8 {
                batch.append(["XADD", env.key("commands"), "*"] + e.fields.flatMap { [String(decoding: $0.0, as: UTF8.self), String(decoding: $0.1, as: UTF8.self)] })
            } else {
                batch.append(["EVAL", Self.xaddBytes, "1", env.key("commands")] + e.fields.flatMap { [Self.hex($0.0), Self.hex($0.1)] })
            }
            pending.append(e)
            if batch.count >= 100 || size > 100_000 {
                try flush()
                // Flow control: wait (bounded) while the engine is more than 2,000 entries behind.
                let deadline = Date().addingTimeInterval(120)
                while try lag() > 2_000, Date() < deadline { usleep(20_000) }
            }
        }
        try flush()
        let sendSeconds = Date().timeIntervalSince(started)

        // 2. Wait (bounded) until every entry that asked for a reply has one.
        let expecting = sent.filter { $0.entry.replyTo != nil }
        var replies: [String: [[String: String]]] = [:]
        var lastReply = "-"
        let deadline = Date().addingTimeInterval(120 + Double(count) * 0.01)
        var missing = expecting.count
        repeat {
            let page = try readStream(replyStream, after: lastReply)
            for (id, fields) in page {
                lastReply = "(" + id
                replies[fields["commandId"] ?? "?", default: []].append(fields)
            }
            missing = expecting.filter { replies[$0.id] == nil }.count
            if missing == 0 { break }
            usleep(200_000)
        } while Date() < deadline
        let waitSeconds = Date().timeIntervalSince(started) - sendSeconds

        // 3. The engine still answers, and still works.
        let stats = try client.call("stats", timeout: 60)
        #expect(stats.ok, "stats after the fuzz entries: \(stats.fields)")
        let base = try client.call("getRun", ["runId": baseRunId], timeout: 60)
        #expect(base.ok, "getRun after the fuzz entries: \(base.fields)")
        let fresh = try client.call("execute", ["planId": "welcome", "contact": contact("after-fuzz")], timeout: 60)
        #expect(fresh.ok, "execute after the fuzz entries: \(fresh.fields)")

        // 4. Every entry that asked for a reply got one.
        #expect(missing == 0, "seed \(seed): \(missing) of \(expecting.count) entries that named replyTo got no reply, e.g. \(expecting.filter { replies[$0.id] == nil }.prefix(5).map { "\($0.id) \($0.entry.kind)" })")
        let repeated = expecting.filter { (replies[$0.id]?.count ?? 0) > 1 }
        #expect(repeated.isEmpty, "seed \(seed): \(repeated.count) entries got more than one reply, e.g. \(repeated.prefix(5).map(\.id))")
        for (id, list) in replies where list.contains(where: { $0["ok"] != "true" && $0["ok"] != "false" }) {
            Issue.record("a reply to \(id) has no ok: \(list)")
        }

        // 5. Rejected entries: on P:rejected or answered with an error. Every one that named replyTo was answered
        //    with an error, and none created a run.
        let rejectedEntries = try readStream(env.key("rejected"))
        var rejected = Set(rejectedEntries.compactMap { $0.fields["commandId"] })
        for (id, list) in replies where list.contains(where: { $0["ok"] == "false" }) { rejected.insert(id) }
        let sentIds = Set(sent.map(\.id))
        let onRejected = Set(rejectedEntries.compactMap { $0.fields["commandId"] })
        for e in expecting where onRejected.contains(e.id) {
            #expect(replies[e.id]?.first?["ok"] == "false", "\(e.id) is on rejected but was answered \(replies[e.id] ?? [])")
        }
        let runsAfter = try runIds()
        var newRuns = 0
        for runId in runsAfter where !runsBefore.contains(runId) {
            newRuns += 1
            guard let c = RunID.components(of: runId) else {
                Issue.record("a run id of an unexpected form: \(runId)")
                continue
            }
            let creator = EntryID(ms: c.ms, seq: c.seq).description
            #expect(!rejected.contains(creator), "seed \(seed): run \(runId) was created by the rejected entry \(creator)")
            if !sentIds.contains(creator), runId != (fresh.object["id"] as? String) {
                // Created by a test command (the baseline), not by the generator.
                #expect(runsBefore.contains(runId) || creator == fresh.commandId, "run \(runId) from an unknown entry")
            }
        }

        // 6. No plan the validator must refuse was registered; the engine's own keys kept their types.
        let plansAfter = Set((try env.redis.call(["SMEMBERS", env.key("{plans}:ids")]).array ?? []).compactMap(\.string))
        let refused = plansAfter.subtracting(plansBefore).filter { $0.hasPrefix("inv-") || !Identifier.isValid($0) }
        #expect(refused.isEmpty, "seed \(seed): invalid plans were registered: \(refused.sorted())")
        let typesAfter = try env.redis.pipeline(forbidden.map { ["TYPE", $0] }).map { $0.string ?? "?" }
        let allowed = generator.keyTypes
        for (key, type) in zip(forbidden, typesAfter) where !(allowed[key] ?? []).contains(type) {
            Issue.record("a reply went into the engine's key space: \(key.prefix(80)) is a \(type)")
        }
        // P:rejected holds rejections, never replies (a reply has `ok`).
        let strays = rejectedEntries.filter { $0.fields["ok"] != nil }
        #expect(strays.isEmpty, "replies on P:rejected: \(strays.prefix(3).map(\.id))")

        let replyCount = replies.values.reduce(0) { $0 + $1.count }
        let errors = replies.values.flatMap { $0 }.filter { $0["ok"] == "false" }
        var codes: [String: Int] = [:]
        for e in errors { codes[e["error"] ?? "?", default: 0] += 1 }
        print("""
            FuzzEntriesTests: seed \(seed), \(sent.count) entries (\(bytesSent / 1_000_000) MB) sent in \(Int(sendSeconds)) s, \
            waited \(Int(waitSeconds)) s; kinds \(kinds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            FuzzEntriesTests: \(expecting.count) named replyTo, \(replyCount) replies (\(errors.count) errors: \
            \(codes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))), missing \(missing); \
            \(rejectedEntries.count) on rejected; \(newRuns) new runs; plans \(plansBefore.count) → \(plansAfter.count); \
            total \(Int(Date().timeIntervalSince(started))) s
            """)
    }
}
