import ArgumentParser
import DEECore
import Foundation

/// An argument that is JSON text, `@FILE` (the file's contents) or `@-` (stdin): `--contact`, `--variables`,
/// `--data`, and the plan file of `plan register`.
enum JSONArgument {
    /// The text an argument stands for: itself, or the contents of the file it names after `@`.
    static func text(_ argument: String, name: String) throws(ValidationError) -> String {
        guard argument.hasPrefix("@") else { return argument }
        return try file(String(argument.dropFirst()), name: name)
    }

    /// A file's contents as UTF-8; `-` is stdin.
    static func file(_ path: String, name: String) throws(ValidationError) -> String {
        if path == "-" {
            return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("\(name): cannot read \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("\(name): \(path) is not UTF-8 text")
        }
        return text
    }

    /// A JSON object from text, `@FILE` or `@-`.
    static func object(_ argument: String, name: String) throws(ValidationError) -> JSONValue {
        try object(text: try text(argument, name: name), name: name)
    }

    /// Checks an argument in `validate()`; `@-` is checked when it is read, since stdin can be read once.
    static func check(_ argument: String?, name: String) throws(ValidationError) {
        guard let argument, argument != "@-" else { return }
        _ = try object(argument, name: name)
    }

    static func object(text: String, name: String) throws(ValidationError) -> JSONValue {
        guard let value = JSONValue.parse(text) else { throw ValidationError("\(name) is not JSON") }
        guard value.object != nil else { throw ValidationError("\(name) must be a JSON object, not \(value.typeName)") }
        return value
    }
}
