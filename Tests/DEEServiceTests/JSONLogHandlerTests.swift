import DEEService
import Foundation
import Logging
import Synchronization
import Testing

/// `--log-format json`: each record one line that a JSON parser reads, with the five fields and dotted keys.
@Suite struct JSONLogHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    static func logger(_ lines: Lines, level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "dee") { label in
            JSONLogHandler(label: label, output: { lines.append($0) }, now: { 1_795_465_714_287 })
        }
        logger.logLevel = level
        return logger
    }

    static func parse(_ line: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any], "not a JSON object: \(line)")
    }

    @Test func oneObjectPerLineWithDottedKeys() throws {
        let lines = Lines()
        var logger = Self.logger(lines)
        logger[metadataKey: "partition"] = "3"
        logger.warning(
            "an inbox entry failed",
            metadata: ["stream.entry_id": "1795465714287-0", "command.type": "execute", "run.id": "r-1"])
        let all = lines.all
        #expect(all.count == 1)
        #expect(!all[0].contains("\n"))
        let o = try Self.parse(all[0])
        #expect(o["timestamp"] as? String == "2026-11-23T20:28:34.287Z")
        #expect(o["level"] as? String == "warning")
        #expect(o["label"] as? String == "dee")
        #expect(o["message"] as? String == "an inbox entry failed")
        let metadata = try #require(o["metadata"] as? [String: Any])
        #expect(metadata["stream.entry_id"] as? String == "1795465714287-0")
        #expect(metadata["command.type"] as? String == "execute")
        #expect(metadata["run.id"] as? String == "r-1")
        #expect(metadata["partition"] as? String == "3")
        #expect(Set(o.keys) == ["timestamp", "level", "label", "message", "metadata"])
    }

    @Test func escapesWhatWouldBreakALine() throws {
        let lines = Lines()
        let logger = Self.logger(lines)
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} é 🚀"
        logger.error("\(nasty)", metadata: [nasty: .string(nasty), "list": ["a", .dictionary(["k": "v"])]])
        let line = try #require(lines.all.first)
        #expect(!line.contains("\n"))
        let o = try Self.parse(line)
        #expect(o["message"] as? String == nasty)
        let metadata = try #require(o["metadata"] as? [String: Any])
        #expect(metadata[nasty] as? String == nasty)
        let list = try #require(metadata["list"] as? [Any])
        #expect(list.first as? String == "a")
        #expect((list.last as? [String: Any])?["k"] as? String == "v")
    }

    @Test func levelFiltersAndCallMetadataWins() throws {
        let lines = Lines()
        var logger = Self.logger(lines, level: .notice)
        logger[metadataKey: "loop"] = "router"
        logger.info("dropped")
        logger.notice("kept", metadata: ["loop": "override"])
        #expect(lines.all.count == 1)
        let metadata = try #require(try Self.parse(lines.all[0])["metadata"] as? [String: Any])
        #expect(metadata["loop"] as? String == "override")
    }

    @Test func timestampIsISO8601UTCWithMilliseconds() {
        let line = JSONLogHandler.line(timestamp: 0, level: .info, label: "x", message: "m", metadata: [:])
        #expect(line == #"{"timestamp":"1970-01-01T00:00:00.000Z","level":"info","label":"x","message":"m","metadata":{}}"#)
    }
}
