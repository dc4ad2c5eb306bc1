import Foundation
import Testing

@testable import DEECore

/// docs/asyncapi.yaml is the wire protocol written down for other languages; these tests keep it true to the
/// decoder. The file is read by indentation (two spaces a level, one key per line down to a payload's properties)
/// rather than with a YAML package: the sections checked are written that way on purpose, and a package only for
/// this test would add to every build.
@Suite struct AsyncAPITests {
    /// Keys of the YAML mapping at `path`, in file order, and the inline value of each (`key: value`).
    struct Outline {
        var children: [String: [(key: String, value: String)]] = [:]

        init(_ text: String) {
            var stack: [(indent: Int, key: String)] = []
            for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
                let line = String(raw)
                let trimmed = line.drop { $0 == " " }
                if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix("- ") { continue }
                let indent = line.count - trimmed.count
                // Lines inside a block scalar (description: |) are deeper than any key and hold no `key:` start.
                guard let colon = trimmed.firstIndex(of: ":"),
                    trimmed[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || "_.$-".contains($0) })
                else { continue }
                let key = String(trimmed[..<colon])
                let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                while let last = stack.last, last.indent >= indent { stack.removeLast() }
                let path = stack.map(\.key).joined(separator: "/")
                children[path, default: []].append((key, value))
                stack.append((indent, key))
            }
        }

        func keys(_ path: String...) -> [String] { (children[path.joined(separator: "/")] ?? []).map(\.key) }

        func value(_ path: String...) -> String? {
            let parent = path.dropLast().joined(separator: "/")
            return children[parent]?.first { $0.key == path.last }?.value
        }

        /// A flow list value (`[a, b, "c"]`).
        func list(_ path: String...) -> [String] {
            let parent = path.dropLast().joined(separator: "/")
            guard let v = children[parent]?.first(where: { $0.key == path.last })?.value, v.hasPrefix("["),
                v.hasSuffix("]")
            else { return [] }
            return v.dropFirst().dropLast().split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
        }
    }

    static let document: Outline = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = (try? String(contentsOf: root.appendingPathComponent("docs/asyncapi.yaml"), encoding: .utf8)) ?? ""
        return Outline(text)
    }()

    static let envelope: Set<String> = ["type", "requestId", "replyTo", "actor", "args"]

    @Test func itIsAsyncAPI3WithEveryStream() {
        let doc = Self.document
        #expect(doc.value("asyncapi") == "3.0.0")
        #expect(Set(doc.keys("channels")) == ["commands", "replies", "events", "actions", "rejected", "deadletter"])
        #expect(doc.value("channels", "commands", "address") == "'{prefix}:commands'")
    }

    @Test func everyServedCommandIsDocumentedAndEveryDocumentedOneIsServed() {
        let doc = Self.document
        let served = Set(RequestDecoder.commandNames)
        let inChannel = doc.keys("channels", "commands", "messages")
        #expect(inChannel.count == Set(inChannel).count, "a command is listed twice")
        #expect(Set(inChannel).subtracting(served).isEmpty, "documented but not served")
        #expect(served.subtracting(inChannel).isEmpty, "served but not in docs/asyncapi.yaml")
        for command in served {
            #expect(
                doc.value("channels", "commands", "messages", command) == "{$ref: '#/components/messages/\(command)'}",
                "channels.commands.messages.\(command) should point at its message")
        }
    }

    @Test(arguments: RequestDecoder.commandNames)
    func eachCommandsFieldsAreItsArgumentsAndTheEnvelope(_ command: String) throws {
        let doc = Self.document
        let arguments = try #require(RequestDecoder.specs[command]).map(\.0)
        let documented = doc.keys("components", "messages", command, "payload", "properties")
        #expect(Set(documented) == Self.envelope.union(arguments), "docs/asyncapi.yaml: \(command)'s properties")
        #expect(doc.value("components", "messages", command, "name") == command)
        #expect(doc.value("components", "messages", command, "payload", "properties", "type")?.contains("const: \(command)") == true)
    }

    @Test func errorCodesAndStatusesMatchTheCore() {
        let doc = Self.document
        #expect(Set(doc.list("components", "schemas", "ErrorCode", "enum")) == Set(ErrorCode.allCases.map(\.rawValue)))
        #expect(Set(doc.list("components", "schemas", "RunStatus", "enum")) == Set(RunStatus.allCases.map(\.rawValue)))
    }

    /// The reader must find what is there, or the tests above would pass on an empty file.
    @Test func theReaderIsNotVacuous() {
        let doc = Self.document
        #expect(doc.keys("channels", "commands", "messages").count >= 20)
        #expect(doc.keys("components", "messages", "execute", "payload", "properties").contains("contact"))
        let broken = Outline("channels:\n  commands:\n    messages:\n      execute: {}\n      tick: {}\n")
        #expect(broken.keys("channels", "commands", "messages") == ["execute", "tick"])
    }
}
