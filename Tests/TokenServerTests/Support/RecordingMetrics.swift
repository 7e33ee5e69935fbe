import CoreMetrics
import Synchronization

/// A metrics factory that keeps every value, keyed by label and dimensions, so a test can
/// check what the server reported without bootstrapping the process-wide metrics system.
final class RecordingMetrics: MetricsFactory, Sendable {
    private let values = Mutex<[String: [Double]]>([:])

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    func append(_ key: String, _ value: Double) {
        values.withLock { $0[key, default: []].append(value) }
    }

    /// Every value recorded under `label` with exactly these dimensions.
    func values(_ label: String, _ dimensions: [(String, String)] = []) -> [Double] {
        values.withLock { $0[Self.key(label, dimensions)] ?? [] }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(self, Self.key(label, dimensions))
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        Handler(self, Self.key(label, dimensions))
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        Handler(self, Self.key(label, dimensions))
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(self, Self.key(label, dimensions))
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(self, Self.key(label, dimensions))
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    final class Handler: CounterHandler, FloatingPointCounterHandler, MeterHandler, RecorderHandler, TimerHandler,
        Sendable
    {
        let factory: RecordingMetrics
        let key: String

        init(_ factory: RecordingMetrics, _ key: String) {
            self.factory = factory
            self.key = key
        }

        func increment(by amount: Int64) { factory.append(key, Double(amount)) }
        func increment(by amount: Double) { factory.append(key, amount) }
        func decrement(by amount: Double) { factory.append(key, -amount) }
        func reset() {}
        func set(_ value: Int64) { factory.append(key, Double(value)) }
        func set(_ value: Double) { factory.append(key, value) }
        func record(_ value: Int64) { factory.append(key, Double(value)) }
        func record(_ value: Double) { factory.append(key, value) }
        func recordNanoseconds(_ duration: Int64) { factory.append(key, Double(duration)) }
    }
}
