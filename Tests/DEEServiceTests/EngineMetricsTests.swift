import DEECore
import DEEService
import Metrics
import MetricsTestKit
import Testing

/// What each recording function of ``EngineMetrics`` records, into swift-metrics' test factory.
@Suite struct EngineMetricsTests {
    @Test func commandsCountedByTypeAndErrorCode() throws {
        let factory = TestMetrics()
        let metrics = EngineMetrics(factory: factory)
        metrics.command("execute", .ok(["id": "r1"]))
        metrics.command("execute", .ok(["id": "r2"]))
        metrics.command("execute", .error(DEEError(.alreadyEnrolled, "open run r1")))
        metrics.command("getRun", .error(DEEError(.notFound, "no run")))
        let name = EngineMetrics.Name.self
        #expect(try factory.expectCounter(name.commandsApplied, [("type", "execute")]).totalValue == 2)
        #expect(
            try factory.expectCounter(name.commandsFailed, [("type", "execute"), ("code", "already_enrolled")])
                .totalValue == 1)
        #expect(try factory.expectCounter(name.commandsFailed, [("type", "getRun"), ("code", "not_found")]).totalValue == 1)
        // Without a start, nothing was timed.
        #expect(factory.timers.isEmpty)
    }

    @Test func unknownTypesShareOneLabel() throws {
        let factory = TestMetrics()
        let metrics = EngineMetrics(factory: factory)
        // A producer's typo, or hostile input, must not make a time series per string.
        for type in ["bogus", "DROP TABLE", String(repeating: "x", count: 500)] {
            metrics.command(type, .error(DEEError(.unknownCommand, "no such command")))
        }
        let counter = try factory.expectCounter(
            EngineMetrics.Name.commandsFailed, [("type", "other"), ("code", "unknown_command")])
        #expect(counter.totalValue == 3)
        #expect(factory.counters.count == 1)
    }

    @Test func applyDurationAndTickMetrics() throws {
        let factory = TestMetrics()
        let metrics = EngineMetrics(factory: factory)
        let start = ContinuousClock.now
        metrics.command("tick", .ok(["tick": 4, "stepped": 17]), since: start)
        metrics.command("pauseRun", .ok(["id": "r"]), since: start)
        let name = EngineMetrics.Name.self
        #expect(try factory.expectTimer(name.applyDuration, [("type", "tick")]).values.count == 1)
        #expect(try factory.expectTimer(name.applyDuration, [("type", "pauseRun")]).values.count == 1)
        #expect(try factory.expectTimer(name.tickDuration).values.count == 1)
        #expect(try factory.expectRecorder(name.tickSteps).values == [17])
        // A failed tick is no tick.
        metrics.command("tick", .error(DEEError(.internal, "lost")), since: start)
        #expect(try factory.expectRecorder(name.tickSteps).values == [17])
    }

    @Test func leasesSetTheirGaugesAndTheHealthOwnership() throws {
        let factory = TestMetrics()
        let metrics = EngineMetrics(factory: factory)
        metrics.partitionLease(0, held: true)
        metrics.partitionLease(1, held: true)
        metrics.partitionLease(1, held: true)
        metrics.partitionLease(0, held: false)
        metrics.routerLease(held: true)
        let name = EngineMetrics.Name.self
        #expect(try factory.expectGauge(name.partitionOwned, [("partition", "0")]).values == [1, 0])
        // Set only when it changes: called every round, recorded once.
        #expect(try factory.expectGauge(name.partitionOwned, [("partition", "1")]).values == [1])
        #expect(try factory.expectGauge(name.routerLease).lastValue == 1)
        #expect(metrics.ownership.router)
        #expect(metrics.ownership.partitions == [1])
    }

    @Test func samplesAndDeadLetters() throws {
        let factory = TestMetrics()
        let metrics = EngineMetrics(factory: factory)
        metrics.sampled(.init(ingressLag: 12, ingressPending: 3, runs: [.active: 5, .waiting: 2], deadletters: 1))
        metrics.deadLetter(.partition)
        metrics.deadLetter(.ingress)
        metrics.deadLetter(.partition)
        let name = EngineMetrics.Name.self
        #expect(try factory.expectGauge(name.ingressLag).lastValue == 12)
        #expect(try factory.expectGauge(name.ingressPending).lastValue == 3)
        #expect(try factory.expectGauge(name.runs, [("status", "active")]).lastValue == 5)
        #expect(try factory.expectGauge(name.runs, [("status", "completed")]).lastValue == 0)
        #expect(try factory.expectGauge(name.deadletterEntries).lastValue == 1)
        #expect(try factory.expectGauge(name.redisUp).lastValue == 1)
        #expect(try factory.expectCounter(name.deadletters, [("source", "partition")]).totalValue == 2)
        #expect(try factory.expectCounter(name.deadletters, [("source", "ingress")]).totalValue == 1)
        metrics.sampled(nil)
        #expect(try factory.expectGauge(name.redisUp).lastValue == 0)
        #expect(try factory.expectGauge(name.ingressLag).lastValue == 12)
    }

    @Test func disabledRecordsNothing() {
        let metrics = EngineMetrics.disabled
        metrics.command("execute", .ok(["id": "r"]), since: .now)
        metrics.partitionLease(0, held: true)
        #expect(!metrics.isEnabled)
        #expect(metrics.ownership.partitions.isEmpty)
    }
}
