import ArgumentParser
import DEECore
import Testing

@testable import dee

/// The CLI's plain parts, without Redis: times, CSV and contact files, tables, merged bulk results, events.
@Suite struct ParserTests {
    static let now: Int64 = 1_795_465_714_287

    @Test(arguments: [
        ("24h", now - 86_400_000), ("30m", now - 1_800_000), ("500ms", now - 500), ("7d", now - 604_800_000),
        ("1795465714287", 1_795_465_714_287), ("0", 0),
        ("2026-11-23", 1_795_392_000_000), ("2026-11-23T10:00:00Z", 1_795_428_000_000),
        ("2026-11-23T10:00:00.250Z", 1_795_428_000_250), ("2026-11-23T12:00:00+02:00", 1_795_428_000_000),
    ] as [(String, Int64)])
    func timeArguments(text: String, expected: Int64) {
        #expect(TimeArgument.epochMilliseconds(text, now: Self.now) == expected)
    }

    @Test(arguments: ["", "yesterday", "24", "24x", "-5h", "2026-13-01", "2026-11-23T25:00:00Z", "h"])
    func badTimeArguments(text: String) {
        // "24" alone is epoch ms 24, not a duration: only the form without a unit is a number.
        if text == "24" {
            #expect(TimeArgument.epochMilliseconds(text, now: Self.now) == 24)
        } else {
            #expect(TimeArgument.epochMilliseconds(text, now: Self.now) == nil, "\(text)")
        }
    }

    @Test func csvQuotesCommasLineBreaksAndCRLF() throws {
        let text = "\u{FEFF}id,name,note\r\nc1,\"One, Esq.\",\"said \"\"hi\"\"\"\r\n\r\nc2,Two,\"two\nlines\"\nc3,,\n"
        let records = try CSVReader.records(text)
        #expect(records.map(\.fields) == [
            ["id", "name", "note"], ["c1", "One, Esq.", "said \"hi\""], ["c2", "Two", "two\nlines"], ["c3", "", ""],
        ])
        #expect(records.map(\.line) == [1, 2, 4, 6])
    }

    @Test func csvErrorsNameTheLine() {
        #expect(throws: CSVReader.ParseError(line: 2, message: "a quoted field is never closed")) {
            try CSVReader.records("id\n\"open\n")
        }
        #expect(throws: CSVReader.ParseError.self) { try CSVReader.records("id,name\n\"c1\"x,y\n") }
    }

    @Test func csvContactsNeedAnIdColumnAndOmitEmptyCells() throws {
        let contacts = try ContactsFile.parse("id,email,tier\nc1,one@example.com,\nc2,,gold\n", format: .csv)
        #expect(contacts == [["id": "c1", "email": "one@example.com"], ["id": "c2", "tier": "gold"]])
        #expect(throws: ContactsFile.ParseError.self) { try ContactsFile.parse("email\nx@y\n", format: .csv) }
        #expect(throws: ContactsFile.ParseError(line: 3, message: "3 fields, the header has 2")) {
            try ContactsFile.parse("id,email\nc1,a\nc2,b,c\n", format: .csv)
        }
        #expect(throws: ContactsFile.ParseError.self) { try ContactsFile.parse("id,id\nc1,c2\n", format: .csv) }
        #expect(try ContactsFile.parse("id,email\n", format: .csv).isEmpty)
    }

    @Test func jsonLinesSkipBlankLinesAndNameBadOnes() throws {
        let contacts = try ContactsFile.parse("{\"id\":\"a\"}\r\n\n  {\"id\":\"b\",\"n\":1}  \n", format: .jsonl)
        #expect(contacts == [["id": "a"], ["id": "b", "n": 1]])
        #expect(throws: ContactsFile.ParseError(line: 2, message: "not JSON")) {
            try ContactsFile.parse("{\"id\":\"a\"}\n{oops\n", format: .jsonl)
        }
        #expect(throws: ContactsFile.ParseError(line: 1, message: "a contact is a JSON object, not array")) {
            try ContactsFile.parse("[1]\n", format: .jsonl)
        }
        #expect(try ContactsFile.parse("[{\"id\":\"a\"},{\"id\":\"b\"}]", format: .json).count == 2)
    }

    @Test(arguments: [
        ("contacts.csv", "{\"id\":1}", ContactsFile.Format.csv), ("x.jsonl", "id\n", .jsonl), ("x.ndjson", "", .jsonl),
        ("contacts", "  {\"id\":\"a\"}\n", .jsonl), ("contacts.json", "[{}]", .json), ("contacts.txt", "id,email\n", .csv),
    ])
    func formatDetection(path: String, text: String, expected: ContactsFile.Format) {
        #expect(ContactsFile.detect(text, path: path) == expected)
    }

    @Test func tablesPadColumnsAndCutLongCells() {
        var table = TextTable(headers: ["ID", "STATUS"], maxWidth: 8)
        table.append(["r1", "active"])
        table.append(["r-two", "a\nvery long status"])
        #expect(table.render() == "ID     STATUS\nr1     active\nr-two  a very …\n")
        #expect(TextTable(headers: ["A", "B"]).render() == "A  B\n")
        var block = KeyValueBlock()
        block.append("tick", "6")
        block.append("partitions", "1")
        #expect(block.render() == "tick        6\npartitions  1\n")
    }

    @Test func prettyJSONSortsKeysAndIndents() {
        let value: JSONValue = ["b": [1, 2], "a": ["x": .null], "c": [:], "d": []]
        #expect(JSONText.pretty(value) == """
            {
              "a": {
                "x": null
              },
              "b": [
                1,
                2
              ],
              "c": {},
              "d": []
            }
            """)
        #expect(JSONValue.parse(JSONText.pretty(value)) == value)
    }

    @Test func bulkResultsMergeWithFileIndexes() {
        var merged = BulkResult()
        merged.add(["created": 2, "skipped": 1, "errors": 0, "skippedContacts": [["contactId": "a", "index": 1, "reason": "suppressed"]], "errorDetails": []], offset: 0)
        merged.add(["created": 1, "skipped": 0, "errors": 1, "skippedContacts": [], "errorDetails": [["index": 0, "error": "bad"]]], offset: 3)
        #expect(merged.json["created"] == 3)
        #expect(merged.json["skipped"] == 1)
        #expect(merged.json["errors"] == 1)
        #expect(merged.json["skippedContacts"].array?.first?["index"] == 1)
        #expect(merged.json["errorDetails"].array?.first?["index"] == 3)
        #expect(merged.summary(contacts: 5, plan: "p").hasPrefix("created 3, skipped 1, errors 1 (5 contacts, plan p)\n"))
    }

    @Test func runFilterFlags() throws {
        let list = try RunsCommand.List.parse([
            "--status", "active,waiting", "--status", "active", "--status", "paused", "--plan", "welcome", "--since", "24h",
        ])
        #expect(list.filters.statuses == ["active", "waiting", "paused"])
        let fields = list.filters.fields(now: Self.now)
        #expect(fields["status"] == #"["active","waiting","paused"]"#)
        #expect(fields["planId"] == "welcome")
        #expect(fields["startedAfter"] == String(Self.now - 86_400_000))
        #expect(fields["startedBefore"] == nil)
        #expect(throws: (any Error).self) { try RunsCommand.List.parse(["--status", "running"]) }
        #expect(throws: (any Error).self) { try RunsCommand.List.parse(["--before", "soon"]) }
        #expect(throws: (any Error).self) { try BulkCommand.Cancel.parse(["--reason", "x"]) }
        #expect(try BulkCommand.Cancel.parse(["--reason", "x", "--contact", "c1"]).filters.summary == "contact=c1")
    }

    @Test func streamEventsOrderFilterAndPrint() {
        let a = StreamEvent(id: "1795465714287-1", partition: 1, fields: [("type", "run.step"), ("planId", "p"), ("tick", "3")])
        let b = StreamEvent(id: "1795465714287-0", partition: 0, fields: [("type", "run.created"), ("planId", "q")])
        #expect([a, b].sorted(by: StreamEvent.before).map(\.id) == ["1795465714287-0", "1795465714287-1"])
        #expect(a.json["tick"] == 3)
        #expect(a.json["partition"] == 1)
        #expect(EventFilter(planId: "p", runId: nil, types: []).matches(a))
        #expect(!EventFilter(planId: "p", runId: nil, types: []).matches(b))
        #expect(EventFilter(planId: nil, runId: nil, types: ["run.created"]).matches(b))
        #expect(StreamID("0") != nil && StreamID("12-3") != nil && StreamID("x-1") == nil && StreamID("1-2-3") == nil)
    }

    /// `--run-retention` takes 1 s to 3650 d; anything else is refused before the engine starts.
    @Test(arguments: ["1s", "30d", "12h", "3650d", "1000ms"])
    func runRetentionInBounds(text: String) throws {
        let serve = try Serve.parse(["--run-retention", text])
        #expect(serve.runRetention == text)
    }

    @Test(arguments: ["0s", "999ms", "3651d", "forever", "-1d", "30", "infd", "nand", ""])
    func runRetentionOutOfBounds(text: String) {
        #expect(throws: (any Error).self) { try Serve.parse(["--run-retention", text]) }
    }
}
