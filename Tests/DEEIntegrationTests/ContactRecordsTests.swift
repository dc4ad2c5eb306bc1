import DEECore
@testable import DEEStore
import DEETestSupport
import Foundation
import Redis
import Testing

/// Layout 3's contact records (Sources/DEEStore/ContactRecords.swift): the Lua and Swift halves agree, and the
/// apply script's record writes keep one token per run, tagged while open.
@Suite("contact records", .offPool)
struct ContactRecordsTests {
    /// The bucket of a contact, computed in Lua by the scripts that find a record themselves, is the engine's.
    @Test func luaAndSwiftPutAContactInTheSameBucket() throws {
        let redis = RedisConnection(configuration: try RedisConfiguration(url: TestRedis.url()))
        var ids = ["a", "b7", "contact_7", "x@y.z", "A-Z.a_z+0@9", String(repeating: "z", count: 128), "é", "日本"]
        var rng = SeededRandom(11)
        let alphabet = Array("ABCXYZabcxyz0189._-@+")
        for _ in 0..<200 {
            ids.append(String((0..<Int.random(in: 1...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
        }
        let script = ContactRecordsLua.bucket + "\nlocal out = {}\nfor i = 1, #ARGV do out[i] = contactBucket(ARGV[i]) end\nreturn out"
        let lua = try redis.evalScript(script, keys: [], arguments: ids).array?.compactMap(\.int) ?? []
        #expect(lua == ids.map(ContactRecords.bucket))
        #expect(Set(lua).count > 150, "buckets spread")
    }

    /// Removing a run's token keeps every other token whole, wherever it stands.
    @Test func runRetentionRemovesOneTokenWhole() throws {
        let redis = RedisConnection(configuration: try RedisConfiguration(url: TestRedis.url()))
        let script = ContactRecordsLua.edit + "\nreturn cxRemove(ARGV[1], ARGV[2]) or '<nil>'"
        func remove(_ v: String, _ id: String) throws -> String? {
            try redis.evalScript(script, keys: [], arguments: [v, id]).string
        }
        #expect(try remove("r1/p r2 r3/q", "r2") == "r1/p r3/q")
        #expect(try remove("r1/p r2 r3/q", "r1") == "r2 r3/q")
        #expect(try remove("r1/p r2 r3/q", "r3") == "r1/p r2")
        #expect(try remove("r1/p", "r1") == "<nil>")
        #expect(try remove("r10 r1/p", "r1") == "r10")
        #expect(try remove("r10 r1", "r1") == "r10")
        #expect(try remove("r10/p", "r1") == "r10/p")
    }

    @Test func aRecordNamesRunsInOrderAndTheOpenOnesByPlan() {
        #expect(ContactRecords.runIds("r1/p r2 r3/q") == ["r1", "r2", "r3"])
        #expect(ContactRecords.runIds(nil).isEmpty)
        #expect(ContactRecords.openRun("r1/p r2 r3/q", planId: "q") == "r3")
        #expect(ContactRecords.openRun("r1/p r2 r3/q", planId: "r2") == nil)
        #expect(ContactRecords.openRun("r1/pp", planId: "p") == nil)
        #expect(ContactRecords.token(runId: "r", planId: "p", open: true) == "r/p")
        #expect(ContactRecords.token(runId: "r", planId: "p", open: false) == "r")
    }
}
