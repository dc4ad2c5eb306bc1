import DEETestSupport
import Foundation
import Redis
import Testing

@Suite("evalScriptPipelined", .offPool)
struct PipelinedScriptTests {
    static let script = "redis.call('RPUSH', KEYS[1], ARGV[1]) return 'OK'"

    @Test func runsInOrderAndThenSeesTheWrites() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let replies = try c.evalScriptPipelined(
            Self.script, calls: (0..<50).map { (["\(p):l"], [String($0)]) }, then: [["LLEN", "\(p):l"]])
        #expect(replies.count == 51)
        #expect(replies.prefix(50).allSatisfy { $0 == .string("OK") })
        #expect(replies.last == .integer(50))
        #expect(try c.call(["LRANGE", "\(p):l", "0", "-1"]).array?.compactMap(\.string) == (0..<50).map(String.init))
    }

    /// After SCRIPT FLUSH a pipeline still runs every script, in order, and the trailing read sees them all
    /// (pipelines send EVAL: an EVALSHA pipeline could answer ok, NOSCRIPT, ok and lose the middle call).
    @Test func thenIsReadAfterTheScriptsWhenTheScriptWasFlushed() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        _ = try c.evalScriptPipelined(Self.script, calls: [(["\(p):warm"], ["x"])])
        let other = try TestConnections.connection()
        defer { other.close() }
        try other.call(["SCRIPT", "FLUSH"])
        let replies = try c.evalScriptPipelined(
            Self.script, calls: (0..<3).map { (["\(p):l"], [String($0)]) }, then: [["LLEN", "\(p):l"]])
        #expect(replies.count == 4)
        #expect(replies.last == .integer(3))
        #expect(try c.call(["LLEN", "\(p):l"]) == .integer(3))
    }
}
