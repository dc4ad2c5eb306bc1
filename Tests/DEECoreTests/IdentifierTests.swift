import DEECore
import Testing

@Suite("Identifiers, entry ids, run ids, partitions")
struct IdentifierTests {
    /// The run id printed into one buffer is the zero-padded concatenation it always was, at every width.
    @Test func runIdsAreZeroPaddedFields() {
        func pad(_ n: UInt64, _ w: Int) -> String {
            let s = String(n)
            return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
        }
        for ms in [0, 7, 1_795_428_000_000, 9_999_999_999_999, 10_000_000_000_000, UInt64.max] as [UInt64] {
            for seq in [0, 42, 999_999, 1_000_000, UInt64.max] as [UInt64] {
                for index in [0, 9, 99_999, 100_000, Int.max, -1] {
                    for partition in [0, 7, 1023, -3] {
                        let old = pad(ms, 13) + "-" + pad(seq, 6) + "-" + pad(UInt64(clamping: index), 5) + "-"
                            + String(partition)
                        #expect(RunID.make(entry: EntryID(ms: ms, seq: seq), index: index, partition: partition) == old)
                    }
                }
            }
        }
    }

    @Test(arguments: [
        "a", "Z", "0", "contact_123", "jane@example.com", "a.b-c_d@e+f", "ABCxyz0189",
        String(repeating: "x", count: 128),
    ])
    func validIds(_ id: String) {
        #expect(Identifier.isValid(id))
    }

    @Test(arguments: [
        "", String(repeating: "x", count: 129), "a:b", "{a}", "a{", "}b", "a b", " a", "a\n", "a\tb", "a\u{0}b",
        "a/b", "a*b", "a\"b", "é", "a,b", "a#b", "dee:{0}:runs", "a\u{1F}b",
    ])
    func invalidIds(_ id: String) {
        #expect(!Identifier.isValid(id))
    }

    @Test func lengthIsCountedInBytes() {
        // 128 ASCII characters is the maximum; a multi-byte character is never valid anyway.
        #expect(Identifier.maxLength == 128)
        #expect(Identifier.isValid(String(repeating: "a", count: 127) + "+"))
        #expect(!Identifier.isValid(String(repeating: "a", count: 127) + "é"))
    }

    @Test func validateThrowsBadRequestNamingTheField() {
        do throws(DEEError) {
            try Identifier.validate("x:y", field: "contact.id")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .badRequest)
            #expect(error.field == "contact.id")
            #expect(error.message.hasPrefix("contact.id:"))
        }
        #expect(throws: Never.self) { try Identifier.validate("ok", field: "x") }
    }

    @Test func validateShowsControlCharactersSafely() {
        do throws(DEEError) {
            try Identifier.validate("a\nb" + String(repeating: "z", count: 100), field: "f")
            Issue.record("expected an error")
        } catch {
            #expect(!error.message.contains("\n"))
            #expect(error.message.count < 200, "long ids are truncated in the message")
        }
    }

    // MARK: EntryID

    @Test func entryIDParsesAndPrints() throws {
        let e = try #require(EntryID("1795428000000-7"))
        #expect(e.ms == 1_795_428_000_000)
        #expect(e.seq == 7)
        #expect(e.description == "1795428000000-7")
        #expect(EntryID(e.description) == e)
    }

    @Test(arguments: ["", "1", "1-", "-1", "a-b", "1-2-3", "1-x", "-", "1 -2", "18446744073709551616-0"])
    func entryIDRejects(_ text: String) {
        #expect(EntryID(text) == nil)
    }

    @Test func entryIDOrder() {
        #expect(EntryID(ms: 1, seq: 5) < EntryID(ms: 2, seq: 0))
        #expect(EntryID(ms: 2, seq: 0) < EntryID(ms: 2, seq: 1))
        #expect(!(EntryID(ms: 2, seq: 1) < EntryID(ms: 2, seq: 1)))
        #expect(EntryID(ms: 10, seq: 0) > EntryID(ms: 9, seq: 99))
    }

    // MARK: RunID

    @Test func runIDFormat() {
        let id = RunID.make(entry: EntryID(ms: 1_795_428_000_000, seq: 3), index: 7, partition: 2)
        #expect(id == "1795428000000-000003-00007-2")
        #expect(Identifier.isValid(id))
        #expect(RunID.make(entry: EntryID(ms: 5, seq: 0), index: 0, partition: 0) == "0000000000005-000000-00000-0")
        #expect(RunID.make(entry: EntryID(ms: 0, seq: 0), index: 99_999, partition: 15) == "0000000000000-000000-99999-15")
    }

    @Test func runIDIsFixedWidthUpToThePartition() {
        let ids = [
            RunID.make(entry: EntryID(ms: 1, seq: 0), index: 0, partition: 0),
            RunID.make(entry: EntryID(ms: 1_795_428_000_000, seq: 999_999), index: 99_999, partition: 0),
            RunID.make(entry: EntryID(ms: 42, seq: 12), index: 3, partition: 0),
        ]
        // 13 + 1 + 6 + 1 + 5 + 1 characters before the partition.
        #expect(Set(ids.map(\.count)) == [28])
        #expect(Set(ids.map { $0.split(separator: "-").map(\.count) }) == [[13, 6, 5, 1]])
    }

    @Test func runIDsSortInCreationOrder() {
        var rng = SplitMix64(seed: 0xD1CE)
        var entries: [(EntryID, Int)] = []
        for _ in 0..<500 {
            let ms = UInt64.random(in: 1_700_000_000_000...1_700_000_000_050, using: &rng)
            let seq = UInt64.random(in: 0...30, using: &rng)
            let index = Int.random(in: 0...1200, using: &rng)
            entries.append((EntryID(ms: ms, seq: seq), index))
        }
        let creationOrder = entries.sorted { a, b in a.0 != b.0 ? a.0 < b.0 : a.1 < b.1 }
        // The partition differs per id (as it would per contact); it must not change the order.
        let ids = creationOrder.enumerated().map { i, e in RunID.make(entry: e.0, index: e.1, partition: (i * 7) % 13) }
        let uniqueIds = ids.enumerated().filter { i, _ in i == 0 || creationOrder[i - 1] != creationOrder[i] }.map(\.1)
        #expect(uniqueIds == uniqueIds.sorted())
        // Ids across a change of magnitude still sort (fixed width, not numeric text).
        let small = RunID.make(entry: EntryID(ms: 999, seq: 9), index: 9, partition: 0)
        let big = RunID.make(entry: EntryID(ms: 1000, seq: 0), index: 0, partition: 0)
        #expect(small < big)
        let idx9 = RunID.make(entry: EntryID(ms: 5, seq: 0), index: 9, partition: 10)
        let idx10 = RunID.make(entry: EntryID(ms: 5, seq: 0), index: 10, partition: 2)
        #expect(idx9 < idx10)
    }

    @Test func runIDPartitionParsing() {
        #expect(RunID.partition(of: "1795428000000-000003-00007-2") == 2)
        #expect(RunID.partition(of: "1795428000000-000003-00007-0") == 0)
        #expect(RunID.partition(of: "1795428000000-000003-00007-127") == 127)
        for p in [0, 1, 5, 63, 1000] {
            #expect(RunID.partition(of: RunID.make(entry: EntryID(ms: 1, seq: 2), index: 3, partition: p)) == p)
        }
    }

    @Test(arguments: [
        "", "abc", "1795428000000-000003-00007", "1795428000000-000003-00007-x", "1795428000000-000003-00007-",
        "179542800000-000003-00007-1", "1795428000000-000003-00007-1-2", "1795428000000-000003-00007--1",
        "1795428000000-000003-00007-1:x", "1795428000000-000003-00007-{1}",
    ])
    func runIDPartitionRejects(_ text: String) {
        #expect(RunID.partition(of: text) == nil)
    }

    /// The byte-wise parse answers what the `split` it replaced did, on ids near the format (a seeded generator:
    /// digits, "-", "+" and a letter, 13 digits up front half the time).
    @Test func runIDPartitionMatchesSplit() {
        func reference(_ id: String) -> Int? {
            guard Identifier.isValid(id) else { return nil }
            let parts = id.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 4, parts[0].count == 13, let p = Int(parts[3]), p >= 0 else { return nil }
            return p
        }
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(n))
        }
        let alphabet = Array("0123456789-+a-")
        var samples = ["1795428000000-000003-00007-+5", "1795428000000-000003-00007-99999999999999999999",
            "1795428000000-000003-00007-9223372036854775807", "1795428000000---1", "1795428000000-a-b-3"]
        for _ in 0..<20_000 {
            var s = next(2) == 0 ? "1795428000000" : ""
            for _ in 0..<next(24) { s.append(alphabet[next(alphabet.count)]) }
            samples.append(s)
        }
        for s in samples { #expect(RunID.partition(of: s) == reference(s), "\(s)") }
    }

    /// Entry ids are parsed byte by byte: digits only, each part within UInt64.
    @Test func entryIDParsing() {
        #expect(EntryID("0-0") == EntryID(ms: 0, seq: 0))
        #expect(EntryID("18446744073709551615-18446744073709551615") == EntryID(ms: .max, seq: .max))
        for bad in ["", "-", "1-", "-1", "1", "1-2-3", "+1-2", "1-+2", "18446744073709551616-0", "0-18446744073709551616",
            "1 -2", "١-2", "1-2 "]
        {
            #expect(EntryID(bad) == nil, "\(bad)")
        }
    }

    @Test func runIDLowerBound() {
        let entry = EntryID(ms: 1_795_428_000_000, seq: 3)
        let bound = RunID.lowerBound(for: entry)
        #expect(bound == "1795428000000-000003-")
        #expect(bound <= RunID.make(entry: entry, index: 0, partition: 0))
        #expect(bound <= RunID.make(entry: EntryID(ms: entry.ms, seq: 4), index: 0, partition: 9))
        #expect(RunID.make(entry: EntryID(ms: entry.ms, seq: 2), index: 99_999, partition: 99) < bound)
        #expect(RunID.make(entry: EntryID(ms: entry.ms - 1, seq: 999_999), index: 99_999, partition: 99) < bound)
    }

    /// Seek bounds sit just above every id of their prefix and below every later id; components read ids back.
    @Test func runIDBoundsAndComponents() {
        let id = RunID.make(entry: EntryID(ms: 1_795_428_000_000, seq: 3), index: 42, partition: 7)
        #expect(RunID.components(of: id)! == (1_795_428_000_000, 3, 42))
        #expect(RunID.components(of: "1795428000000-3-42-7") == nil)
        #expect(RunID.components(of: "not-a-run-id") == nil)
        #expect(RunID.components(of: "1795428000000-000003-00042-") ?? (0, 0, 0) == (1_795_428_000_000, 3, 42))
        #expect(RunID.components(of: "1795428000000-000003-00042-7-1") == nil)
        #expect(RunID.components(of: "+795428000000-000003-00042-7") == nil)
        #expect(RunID.components(of: "1795428000000-00000x-00042-7") == nil)
        #expect(RunID.components(of: "1795428000000-000003-00042") == nil)
        #expect(id < RunID.bound(ms: 1_795_428_000_000, seq: 3, index: 42))
        #expect(RunID.bound(ms: 1_795_428_000_000, seq: 3, index: 41) < id)
        #expect(id < RunID.bound(ms: 1_795_428_000_000))
        #expect(RunID.bound(ms: 1_795_427_999_999) < id)
        let later = RunID.make(entry: EntryID(ms: 1_795_428_000_001, seq: 0), index: 0, partition: 0)
        #expect(RunID.bound(ms: 1_795_428_000_000) < later)
    }

    // MARK: Partitioning

    @Test func crc32KnownVectors() {
        #expect(Partitioning.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(Partitioning.crc32([]) == 0)
        #expect(Partitioning.crc32(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
    }

    @Test func contactPartition() {
        #expect(Partitioning.partition(ofContact: "contact_123", count: 8) == 2)
        #expect(Partitioning.partition(ofContact: "123456789", count: 1000) == Int(0xCBF4_3926 % 1000))
        #expect(Partitioning.partition(ofContact: "anything", count: 1) == 0)
        #expect(Partitioning.partition(ofContact: "anything", count: 0) == 0)
        var rng = SplitMix64(seed: 7)
        var seen = Set<Int>()
        for i in 0..<2000 {
            let id = "c\(i)-\(rng.next() % 100_000)"
            let p = Partitioning.partition(ofContact: id, count: 16)
            #expect((0..<16).contains(p))
            #expect(Partitioning.partition(ofContact: id, count: 16) == p, "stable")
            seen.insert(p)
        }
        #expect(seen.count == 16, "2000 ids spread over all 16 partitions")
    }
}
