import ArgumentParser
import DEECore

extension ContactsFile.Format: ExpressibleByArgument {}

/// `dee bulk execute | cancel`.
struct BulkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulk",
        abstract: "Enroll many contacts, or cancel every run matching filters.",
        discussion: """
            Examples:
              dee bulk execute --plan welcome --contacts contacts.csv
              dee bulk cancel --plan old-plan --status active \\
                --reason "Plan deprecated" --yes
            """,
        subcommands: [Execute.self, Cancel.self])
}

extension BulkCommand {
    struct Execute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enroll the contacts of a file (JSON lines, a JSON array, or CSV with a header row) in a plan.",
            discussion: """
                A CSV file needs an id column; its other columns become contact
                attributes (strings; an empty cell leaves the attribute out). The
                contacts go in commands of --chunk contacts each, with a progress bar
                on a terminal, then a summary (with --json: bulkExecute's result,
                merged over the chunks).

                Example:
                  $ cat contacts.csv
                  id,email
                  c1,one@example.com
                  c2,two@example.com
                  $ dee bulk execute --plan welcome --contacts contacts.csv
                  created 2, skipped 0, errors 0 (2 contacts, plan welcome)
                """)

        @Option(help: "The plan id.")
        var plan: String

        @Option(help: "The contacts file, or - for stdin.")
        var contacts: String

        @Option(help: "The file's format: auto (by extension, else by its first character), jsonl, json, csv.")
        var format: ContactsFile.Format = .auto

        @Option(help: "Variables shared by every run: a JSON object, or @FILE.")
        var variables: String?

        @Option(help: "The plan version (default: the latest).")
        var planVersion: Int?

        @Option(help: "Runs the engine creates per batch script (bulkExecute's batchSize, default 100).")
        var batchSize: Int?

        @Option(help: "Contacts per bulkExecute command (1-100000).")
        var chunk = 1000

        @Option(help: "Idempotency key; chunk n is sent as <key>-<n>, so running the same file again changes nothing.")
        var requestId: String?

        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard (1...100_000).contains(chunk) else { throw ValidationError("--chunk must be 1-100000") }
            if let batchSize, !(1...100_000).contains(batchSize) { throw ValidationError("--batch-size must be 1-100000") }
            if let planVersion, planVersion < 1 { throw ValidationError("--plan-version must be at least 1") }
            if let requestId, requestId.isEmpty || requestId.count > 120 {
                throw ValidationError("--request-id takes 1-120 characters")
            }
            try JSONArgument.check(variables, name: "--variables")
            if contacts != "-" { _ = try loadContacts() }
        }

        func loadContacts() throws(ValidationError) -> [JSONValue] {
            let text = try JSONArgument.file(contacts, name: "--contacts")
            do {
                return try ContactsFile.parse(text, format: format, path: contacts)
            } catch {
                throw ValidationError("--contacts \(contacts): \(error)")
            }
        }

        func run() async throws {
            let all = try loadContacts()
            var base = ["planId": plan]
            if let variables { base["variables"] = try JSONArgument.object(variables, name: "--variables").canonical }
            if let planVersion { base["planVersion"] = String(planVersion) }
            if let batchSize { base["batchSize"] = String(batchSize) }
            let (chunk, requestId, plan) = (chunk, requestId, plan)
            let progress = ProgressBar(total: all.count, enabled: !options.json && Output.stderrIsTerminal)
            try await options.run { session throws(CLIError) in
                var merged = BulkResult()
                var start = 0
                var n = 0
                progress.draw(done: 0, merged.counts)
                while start < all.count {
                    let end = min(start + chunk, all.count)
                    var fields = base
                    fields["contacts"] = JSONValue.array(Array(all[start..<end])).canonical
                    let result = try await session.call("bulkExecute", fields, requestId: requestId.map { "\($0)-\(n)" })
                    merged.add(result, offset: start)
                    start = end
                    n += 1
                    progress.draw(done: start, merged.counts)
                }
                progress.finish()
                options.emit(merged.json) { _ in merged.summary(contacts: all.count, plan: plan) }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel every open run matching the filters (at least one), after saying how many match.",
            discussion: """
                Asks before cancelling when stdin is a terminal; without one, --yes is
                required (else exit 2, and nothing is cancelled).

                Example:
                  $ dee bulk cancel --plan old-plan --status active --reason "Plan deprecated"
                  12 open runs match plan=old-plan status=active. Cancel them? [y/N] y
                  cancelled 12 runs
                """)

        @OptionGroup var filters: RunFilterOptions

        @Option(help: "Why (required; recorded in each run's audit log).")
        var reason: String

        @Flag(name: [.short, .long], help: "Cancel without asking.")
        var yes = false

        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard !filters.isEmpty else {
                throw ValidationError("bulk cancel needs at least one filter (--status, --plan, --contact, --since, --before)")
            }
            guard !reason.trimmingSpaces.isEmpty else { throw ValidationError("--reason may not be empty") }
        }

        func run() async throws {
            let now = TimeArgument.now
            // Only open runs can be cancelled: count those among the statuses asked for.
            let asked = filters.statuses.isEmpty ? RunStatus.open.map(\.rawValue) : filters.statuses
            let open = asked.filter { RunStatus(rawValue: $0)?.isOpen == true }
            let filterObject = JSONValue.object(filters.filters(now: now))
            let (filters, reason, yes, json) = (filters, reason, yes, options.json)
            try await options.run { session throws(CLIError) in
                var count = 0
                if !open.isEmpty {
                    var fields = filters.fields(now: now, statuses: open)
                    fields["limit"] = "1"
                    count = try await session.call("listRuns", fields)["total"].int ?? 0
                }
                if count == 0 {
                    if json { Output.document(["cancelled": 0]) } else {
                        Output.standardOutput("no open runs match \(filters.summary); nothing cancelled\n")
                    }
                    return
                }
                let noun = count == 1 ? "open run matches" : "open runs match"
                if !yes {
                    guard Output.stdinIsTerminal else {
                        throw CLIError.usage(
                            "\(count) \(noun) \(filters.summary); not a terminal, so pass --yes to cancel them")
                    }
                    Output.standardError("\(count) \(noun) \(filters.summary). Cancel them? [y/N] ")
                    let answer = (readLine() ?? "").trimmingSpaces.lowercased()
                    guard answer == "y" || answer == "yes" else {
                        Output.standardError("nothing cancelled\n")
                        return
                    }
                } else if !json {
                    Output.standardError("\(count) \(noun) \(filters.summary)\n")
                }
                let result = try await session.call(
                    "bulkCancel", ["filters": filterObject.canonical, "reason": reason])
                options.emit(result) { r in "cancelled \(r["cancelled"].cell) runs\n" }
            }
        }
    }
}

/// bulkExecute's result summed over the commands a file was sent in, its lists capped at 1000 as the engine's are
/// (SPEC 6), each entry's `index` made the contact's place in the whole file.
struct BulkResult: Sendable, Equatable {
    var created = 0
    var skipped = 0
    var errors = 0
    var skippedContacts: [JSONValue] = []
    var errorDetails: [JSONValue] = []

    static let cap = 1000

    var counts: (created: Int, skipped: Int, errors: Int) { (created, skipped, errors) }

    mutating func add(_ result: JSONValue, offset: Int) {
        created += result["created"].int ?? 0
        skipped += result["skipped"].int ?? 0
        errors += result["errors"].int ?? 0
        for item in result["skippedContacts"].array ?? [] where skippedContacts.count < Self.cap {
            skippedContacts.append(Self.shifted(item, by: offset))
        }
        for item in result["errorDetails"].array ?? [] where errorDetails.count < Self.cap {
            errorDetails.append(Self.shifted(item, by: offset))
        }
    }

    static func shifted(_ item: JSONValue, by offset: Int) -> JSONValue {
        guard var o = item.object, let index = o["index"]?.int else { return item }
        o["index"] = .int(index + offset)
        return .object(o)
    }

    var json: JSONValue {
        [
            "created": .int(created), "skipped": .int(skipped), "errors": .int(errors),
            "skippedContacts": .array(skippedContacts), "errorDetails": .array(errorDetails),
        ]
    }

    /// The counts, then the first skipped contacts and errors.
    func summary(contacts: Int, plan: String, shown: Int = 20) -> String {
        var text = "created \(created), skipped \(skipped), errors \(errors) (\(contacts) contacts, plan \(plan))\n"
        if !skippedContacts.isEmpty {
            var table = TextTable(headers: ["#", "CONTACT", "SKIPPED BECAUSE"], maxWidth: 80)
            for item in skippedContacts.prefix(shown) {
                table.append([item["index"].int.map { String($0 + 1) } ?? "-", item["contactId"].cell, item["reason"].cell])
            }
            text += "\n" + table.render() + more(skipped, shown)
        }
        if !errorDetails.isEmpty {
            var table = TextTable(headers: ["#", "ERROR"], maxWidth: 100)
            for item in errorDetails.prefix(shown) {
                let error = item["error"]
                let text = error.object == nil ? error.cell : "\(error["code"].cell): \(error["message"].cell)"
                table.append([item["index"].int.map { String($0 + 1) } ?? "-", text])
            }
            text += "\n" + table.render() + more(errors, shown)
        }
        return text
    }

    private func more(_ count: Int, _ shown: Int) -> String {
        count > shown ? "… \(count - shown) more (--json lists up to \(Self.cap))\n" : ""
    }
}
