import DEECore
import Testing

/// A run taken through start, pause, resume, pause, cancel: five audit entries.
private func history(signer: AuditSigner) throws -> (run: Run, entries: [AuditEntry]) {
    var change = Fixtures.startedRun(clock: 1, signer: signer)
    var entries = change.audit
    change = try Transitions.pause(run: change.run, reason: "p1", context: Fixtures.context(ms: 1_795_428_000_010, clock: 2), signer: signer)
    entries += change.audit
    change = try Transitions.resume(run: change.run, context: Fixtures.context(ms: 1_795_428_000_020, seq: 1, clock: 4), signer: signer)
    entries += change.audit
    change = try Transitions.pause(run: change.run, reason: nil, context: Fixtures.context(ms: 1_795_428_000_030, clock: 4), signer: signer)
    entries += change.audit
    change = try Transitions.cancel(
        run: change.run, reason: "done", action: "cancelRun", context: Fixtures.context(ms: 1_795_428_000_040, clock: 9),
        signer: signer)
    entries += change.audit
    return (change.run, entries)
}

/// A copy of `e` with some fields replaced; the checksums are kept as they were (what a tamperer who cannot
/// recompute them would leave).
private func edited(
    _ e: AuditEntry, reason: String?? = nil, actor: String?? = nil, tick: Int? = nil, details: JSONValue? = nil,
    previous: String? = nil, checksum: String? = nil
) -> AuditEntry {
    AuditEntry(
        at: e.at, actor: actor ?? e.actor, action: e.action, runId: e.runId, reason: reason ?? e.reason,
        requestId: e.requestId, commandId: e.commandId, tick: tick ?? e.tick, details: details ?? e.details,
        previousChecksum: previous ?? e.previousChecksum, checksum: checksum ?? e.checksum)
}

@Suite("Audit chain")
struct AuditTests {
    let signer = AuditSigner()

    @Test func entriesChainTheirPreviousChecksum() throws {
        let (run, entries) = try history(signer: signer)
        #expect(entries.map(\.action) == ["execute", "pause", "resume", "pause", "cancelRun"])
        #expect(entries[0].previousChecksum == Run.genesis)
        for i in 1..<entries.count {
            #expect(entries[i].previousChecksum == entries[i - 1].checksum)
        }
        #expect(Set(entries.map(\.checksum)).count == entries.count)
        #expect(run.auditHead == entries.last?.checksum)
        #expect(run.auditCount == entries.count)
        #expect(entries.allSatisfy { $0.runId == run.id })
        #expect(entries.allSatisfy { $0.checksum.count == 64 })
        let verdict = signer.verify(entries: entries, head: run.auditHead, count: run.auditCount)
        #expect(verdict.valid)
        #expect(verdict.brokenAt == nil)
    }

    @Test func checksumIsSHA256OfPreviousAndCanonicalBody() throws {
        let (_, entries) = try history(signer: signer)
        let e = entries[1]
        let body = AuditEntry.body(
            at: e.at, actor: e.actor, action: e.action, runId: e.runId, reason: e.reason, requestId: e.requestId,
            commandId: e.commandId, tick: e.tick, details: e.details, previousChecksum: e.previousChecksum)
        #expect(e.checksum == Hex.sha256(e.previousChecksum + "\n" + body.canonical))
        #expect(e.checksum == signer.checksum(body: body, previous: e.previousChecksum))
    }

    @Test func emptyChainIsValidOnlyAgainstGenesis() {
        #expect(signer.verify(entries: [], head: Run.genesis, count: 0).valid)
        let v = signer.verify(entries: [], head: String(repeating: "1", count: 64), count: 1)
        #expect(!v.valid)
        #expect(v.brokenAt == 0)
    }

    @Test func detectsAnEditedEntry() throws {
        let (run, entries) = try history(signer: signer)
        let edits: [(Int, AuditEntry)] = [
            (1, edited(entries[1], reason: .some("innocent"))),
            (1, edited(entries[1], reason: .some(nil))),
            (2, edited(entries[2], actor: .some("mallory"))),
            (3, edited(entries[3], tick: 99)),
            (0, edited(entries[0], details: ["planId": "other"])),
            (4, edited(entries[4], checksum: String(repeating: "f", count: 64))),
            (2, edited(entries[2], previous: Run.genesis)),
        ]
        for (index, replacement) in edits {
            var tampered = entries
            tampered[index] = replacement
            let v = signer.verify(entries: tampered, head: run.auditHead, count: run.auditCount)
            #expect(!v.valid)
            #expect(v.brokenAt == index)
        }
    }

    @Test func detectsAnEditThatRecomputesItsOwnChecksum() throws {
        // Recomputing the edited entry's checksum breaks the link to the next one.
        let (run, entries) = try history(signer: signer)
        let e = entries[1]
        let body = AuditEntry.body(
            at: e.at, actor: e.actor, action: e.action, runId: e.runId, reason: "rewritten", requestId: e.requestId,
            commandId: e.commandId, tick: e.tick, details: e.details, previousChecksum: e.previousChecksum)
        var tampered = entries
        tampered[1] = edited(e, reason: .some("rewritten"), checksum: signer.checksum(body: body, previous: e.previousChecksum))
        let v = signer.verify(entries: tampered, head: run.auditHead, count: run.auditCount)
        #expect(!v.valid)
        #expect(v.brokenAt == 2)
    }

    @Test func detectsARemovedEntry() throws {
        let (run, entries) = try history(signer: signer)
        for index in 0..<(entries.count - 1) {
            var tampered = entries
            tampered.remove(at: index)
            let v = signer.verify(entries: tampered, head: run.auditHead, count: run.auditCount)
            #expect(!v.valid)
            #expect(v.brokenAt == index)
        }
    }

    @Test func detectsAnInsertedEntry() throws {
        let (run, entries) = try history(signer: signer)
        // A forged entry with a correct checksum, linked to entries[1]; entries[2] no longer links.
        let body = AuditEntry.body(
            at: entries[1].at, actor: "mallory", action: "resume", runId: run.id, reason: nil, requestId: "x",
            commandId: "1-0", tick: 2, details: [:], previousChecksum: entries[1].checksum)
        let forged = AuditEntry(
            at: entries[1].at, actor: "mallory", action: "resume", runId: run.id, reason: nil, requestId: "x",
            commandId: "1-0", tick: 2, details: [:], previousChecksum: entries[1].checksum,
            checksum: signer.checksum(body: body, previous: entries[1].checksum))
        var tampered = entries
        tampered.insert(forged, at: 2)
        let v = signer.verify(entries: tampered, head: run.auditHead, count: run.auditCount)
        #expect(!v.valid)
        #expect(v.brokenAt == 3)

        // A duplicated entry.
        var duplicated = entries
        duplicated.insert(entries[2], at: 3)
        #expect(signer.verify(entries: duplicated, head: run.auditHead, count: run.auditCount).brokenAt == 3)

        // A valid entry appended after the head: the count and head kept by the run catch it.
        let tail = entries[entries.count - 1]
        let appendedBody = AuditEntry.body(
            at: tail.at, actor: nil, action: "resume", runId: run.id, reason: nil, requestId: "y", commandId: "2-0",
            tick: 10, details: [:], previousChecksum: tail.checksum)
        var appended = entries
        appended.append(
            AuditEntry(
                at: tail.at, actor: nil, action: "resume", runId: run.id, reason: nil, requestId: "y", commandId: "2-0",
                tick: 10, details: [:], previousChecksum: tail.checksum,
                checksum: signer.checksum(body: appendedBody, previous: tail.checksum)))
        let va = signer.verify(entries: appended, head: run.auditHead, count: run.auditCount)
        #expect(!va.valid)
        #expect(va.brokenAt == entries.count)
    }

    @Test func detectsATruncatedChain() throws {
        let (run, entries) = try history(signer: signer)
        for keep in 0..<entries.count {
            let v = signer.verify(entries: Array(entries.prefix(keep)), head: run.auditHead, count: run.auditCount)
            #expect(!v.valid)
            #expect(v.brokenAt == keep)
        }
    }

    @Test func detectsReorderedEntries() throws {
        let (run, entries) = try history(signer: signer)
        var swapped = entries
        swapped.swapAt(1, 3)
        let v = signer.verify(entries: swapped, head: run.auditHead, count: run.auditCount)
        #expect(!v.valid)
        #expect(v.brokenAt == 1)
    }

    @Test func hmacKeyChangesChecksums() throws {
        let plain = try history(signer: AuditSigner())
        let keyA = try history(signer: AuditSigner(key: Array("secret-a".utf8)))
        let keyA2 = try history(signer: AuditSigner(key: Array("secret-a".utf8)))
        let keyB = try history(signer: AuditSigner(key: Array("secret-b".utf8)))
        for i in 0..<plain.entries.count {
            #expect(plain.entries[i].checksum != keyA.entries[i].checksum)
            #expect(keyA.entries[i].checksum != keyB.entries[i].checksum)
            #expect(keyA.entries[i].checksum == keyA2.entries[i].checksum, "same key, same checksums")
        }
        let a = AuditSigner(key: Array("secret-a".utf8))
        #expect(a.verify(entries: keyA.entries, head: keyA.run.auditHead, count: keyA.run.auditCount).valid)
        // Without the key, or with another, the chain does not verify (and a SHA-256 chain does not verify with a key).
        #expect(AuditSigner().verify(entries: keyA.entries, head: keyA.run.auditHead, count: 5).brokenAt == 0)
        #expect(AuditSigner(key: Array("secret-b".utf8)).verify(entries: keyA.entries, head: keyA.run.auditHead, count: 5).brokenAt == 0)
        #expect(a.verify(entries: plain.entries, head: plain.run.auditHead, count: 5).brokenAt == 0)
        // HMAC checksum matches the documented construction.
        let e = keyA.entries[0]
        let body = AuditEntry.body(
            at: e.at, actor: e.actor, action: e.action, runId: e.runId, reason: e.reason, requestId: e.requestId,
            commandId: e.commandId, tick: e.tick, details: e.details, previousChecksum: e.previousChecksum)
        #expect(e.checksum == Hex.hmacSHA256(Run.genesis + "\n" + body.canonical, key: Array("secret-a".utf8)))
    }

    @Test func entryJSONRoundTrip() throws {
        let (run, entries) = try history(signer: signer)
        for e in entries {
            let json = e.json
            #expect(json.object?["checksum"] == .string(e.checksum))
            #expect(json.object?["at"]?.string?.hasSuffix("Z") == true)
            let back = try #require(AuditEntry(json: json))
            #expect(back == e)
            // Through text, as stored.
            let reparsed = try #require(JSONValue.parse(json.canonical).flatMap(AuditEntry.init(json:)))
            #expect(reparsed == e)
        }
        let fromJSON = entries.compactMap { AuditEntry(json: $0.json) }
        #expect(signer.verify(entries: fromJSON, head: run.auditHead, count: run.auditCount).valid)
        #expect(AuditEntry(json: ["action": "x"]) == nil)
    }

    @Test func hexEncoding() {
        #expect(Hex.encode([0x00, 0x0F, 0xA5, 0xFF]) == "000fa5ff")
        #expect(Hex.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Hex.hmacSHA256("The quick brown fox jumps over the lazy dog", key: Array("key".utf8))
                == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
        #expect(Hex.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode([UInt8](repeating: 0xAB, count: 100)) == String(repeating: "ab", count: 100))
    }

    /// Digests of non-ASCII text taken part by part, pinned to values computed apart (Python's hashlib and hmac):
    /// the chains stored and the keys executors hold were computed over the joined text.
    @Test func partwiseDigestsMatchValuesComputedApart() {
        let body = "emoji 😀👍🏽"
        #expect(
            AuditSigner().checksum(bodyText: body, previous: Run.genesis)
                == "ee8deab3fe1a5c165c59925c773c2715c334d47cbd7945fcdd47162fc4ea7b15")
        #expect(
            AuditSigner(key: Array("secret-a".utf8)).checksum(bodyText: body, previous: Run.genesis)
                == "c8f7d320a430ff4320b854746272a55d3d256853cc0eaf4050ae63914ee39ab7")
        #expect(
            ActionRequest.key(runId: "r-é ü ñ", step: "é ü ñ", tick: 7, attempt: 1) == "cf557cbbd6c3b6c772d58ae2b9471a89")
    }

    /// The audit checksum and the idempotency key are digests taken part by part: each must equal the digest of the
    /// parts joined, as they were first defined (and as stored chains and executors' keys were computed).
    @Test(arguments: ["", "plain", "é ü ñ", "emoji 😀👍🏽", "line\nbreak", String(repeating: "x", count: 5000)])
    func digestsOfPartsEqualDigestsOfTheJoinedText(_ text: String) {
        let previous = Run.genesis
        #expect(AuditSigner().checksum(bodyText: text, previous: previous) == Hex.sha256(previous + "\n" + text))
        #expect(AuditSigner().checksum(bodyText: previous, previous: text) == Hex.sha256(text + "\n" + previous))
        let key = Array("secret-a".utf8)
        #expect(
            AuditSigner(key: key).checksum(bodyText: text, previous: previous)
                == Hex.hmacSHA256(previous + "\n" + text, key: key))
        for (tick, attempt) in [(0, 0), (7, 1), (-3, 12), (Int.max, Int.min)] {
            #expect(
                ActionRequest.key(runId: "r-\(text)", step: text, tick: tick, attempt: attempt)
                    == String(Hex.sha256("r-\(text)\u{1F}\(text)\u{1F}\(tick)\u{1F}\(attempt)").prefix(32)))
        }
    }
}

@Suite("Audit body text")
struct AuditBodyTextTests {
    /// The directly printed body is byte for byte the canonical form of the body object.
    @Test func bodyTextIsTheCanonicalBody() {
        let details: [JSONValue] = [
            .null, [:], ["z": 1, "a": ["b": [1, .double(2.5), "x"]], "é": "\"quoted\"\n"], .string("plain"), .int(-3),
        ]
        for (i, d) in details.enumerated() {
            for actor in [nil, "ops", "with \"quotes\" and \\ and é"] as [String?] {
                for reason in [nil, "", "r\u{1}"] as [String?] {
                    let args = (
                        at: Int64(1_795_428_000_000 + i), action: "tick", runId: "1795428000000-000000-00000-0",
                        requestId: "req-\(i)", commandId: "1795428000000-\(i)", tick: i * 7 - 1,
                        previous: String(repeating: "a", count: 64))
                    let object = AuditEntry.body(
                        at: args.at, actor: actor, action: args.action, runId: args.runId, reason: reason,
                        requestId: args.requestId, commandId: args.commandId, tick: args.tick, details: d,
                        previousChecksum: args.previous)
                    let text = AuditEntry.bodyText(
                        at: args.at, actor: actor, action: args.action, runId: args.runId, reason: reason,
                        requestId: args.requestId, commandId: args.commandId, tick: args.tick, details: d,
                        previousChecksum: args.previous)
                    #expect(text == object.canonical)
                }
            }
        }
    }
}
