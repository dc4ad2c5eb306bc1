@testable import DEEService
import Testing

/// Rebalancing's decisions (Partition/PartitionShare.swift), without Redis: the share, who asks for a lease, who
/// gives one up, and a simulation of processes joining and leaving that checks every partition ends with exactly
/// one owner and the processes hold within one of each other.
@Suite struct PartitionShareTests {
    @Test func targetsAddUpToThePartitionsAndDifferByAtMostOne() {
        #expect((0..<2).map { PartitionShare.target(partitions: 4, members: 2, rank: $0) } == [2, 2])
        #expect((0..<3).map { PartitionShare.target(partitions: 4, members: 3, rank: $0) } == [2, 1, 1])
        #expect((0..<3).map { PartitionShare.target(partitions: 1, members: 3, rank: $0) } == [1, 0, 0])
        #expect((0..<5).map { PartitionShare.target(partitions: 48, members: 5, rank: $0) }.reduce(0, +) == 48)
        #expect(PartitionShare.target(partitions: 4, members: 2, rank: nil) == 4, "not a member yet: alone")
        #expect(PartitionShare.target(partitions: 4, members: 0, rank: nil) == 4)
    }

    @Test func belowItsShareAProcessTakesAFreePartitionAtItsShareOnlyOneLeftFree() {
        let grace = Duration.seconds(2)
        #expect(PartitionShare.standing(held: 1, share: 2, freeFor: nil, grace: grace) == .take)
        #expect(PartitionShare.standing(held: 2, share: 2, freeFor: nil, grace: grace) == .leave)
        #expect(PartitionShare.standing(held: 2, share: 2, freeFor: .seconds(1), grace: grace) == .leave)
        #expect(PartitionShare.standing(held: 2, share: 2, freeFor: .seconds(2), grace: grace) == .take)
    }

    @Test func aboveItsShareAProcessGivesUpItsHighestPartitionOnly() {
        #expect(PartitionShare.shouldRelease(partition: 3, held: [0, 1, 3], share: 2))
        #expect(!PartitionShare.shouldRelease(partition: 1, held: [0, 1, 3], share: 2))
        #expect(!PartitionShare.shouldRelease(partition: 3, held: [0, 3], share: 2))
    }

    /// Processes join and leave at random; each round every live process runs each of its owner loops once (in a
    /// random order), taking leases with SET NX semantics. After a quiet period: every partition held by exactly
    /// one live process, and no process more than one partition above another.
    @Test(arguments: [1 as UInt64, 2, 3, 4, 5])
    func processesJoiningAndLeavingEndBalanced(seed: UInt64) {
        var rng = Xorshift(seed)
        let partitions = Int(rng.next() % 12) + 1
        var owner: [Int: Int] = [:]  // partition -> process
        var freeSince: [Int: [Int: Int]] = [:]  // process -> partition -> round first seen free
        var live: Set<Int> = [0]
        var nextId = 1
        let grace = 3
        func round(_ r: Int) {
            let sorted = live.sorted()
            var work: [(Int, Int)] = []
            for p in live { for q in 0..<partitions { work.append((p, q)) } }
            work.shuffle(using: &rng)
            for (process, q) in work {
                let held = Set(owner.filter { $0.value == process }.map(\.key))
                let share = PartitionShare.target(
                    partitions: partitions, members: sorted.count, rank: sorted.firstIndex(of: process))
                if owner[q] == process {
                    if PartitionShare.shouldRelease(partition: q, held: held, share: share) { owner[q] = nil }
                    continue
                }
                let free = owner[q] == nil
                var seen = freeSince[process] ?? [:]
                if free { seen[q] = seen[q] ?? r } else { seen[q] = nil }
                freeSince[process] = seen
                let freeFor = free ? Duration.seconds(r - (seen[q] ?? r)) : nil
                if PartitionShare.standing(held: held.count, share: share, freeFor: freeFor, grace: .seconds(grace))
                    == .take, free
                {
                    owner[q] = process
                    seen[q] = nil
                    freeSince[process] = seen
                }
            }
        }
        var r = 0
        for _ in 0..<20 {
            switch rng.next() % 3 {
            case 0:
                live.insert(nextId)
                nextId += 1
            case 1 where live.count > 1:
                // Leaves (gracefully or not): its leases go free.
                let gone = live.sorted()[Int(rng.next() % UInt64(live.count))]
                live.remove(gone)
                for (q, p) in owner where p == gone { owner[q] = nil }
            default:
                break
            }
            for _ in 0..<Int(rng.next() % 4) {
                round(r)
                r += 1
            }
        }
        for _ in 0..<(partitions + grace + 4) {
            round(r)
            r += 1
        }
        #expect(owner.count == partitions, "every partition owned: \(owner) of \(partitions), live \(live)")
        #expect(owner.values.allSatisfy(live.contains), "only live processes own")
        let counts = live.map { p in owner.values.filter { $0 == p }.count }
        #expect((counts.max() ?? 0) - (counts.min() ?? 0) <= 1, "balanced: \(counts) for \(partitions) partitions")
    }
}

struct Xorshift: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
