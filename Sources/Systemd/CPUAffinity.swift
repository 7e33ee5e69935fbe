import Glibc

/// The CPUs this process may run on (systemd's `CPUAffinity=`, taskset): what tokend sizes its
/// event loops and password hashing pool by.
public enum CPUAffinity {
    /// The number of CPUs in this process's affinity (`Cpus_allowed_list` in
    /// `/proc/self/status`: taskset, systemd's `CPUAffinity=`), else the online processors; at
    /// least 1. More busy threads than this only take turns on the same CPUs: event loops make
    /// a request wait for another loop's turn, hashing threads evict each other's memory.
    public static var allowedCount: Int {
        if let count = fromStatus() { return count }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    static func fromStatus() -> Int? {
        guard let status = SystemCall.readSmallFile("/proc/self/status"),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        return count(list: line.dropFirst("Cpus_allowed_list:".count))
    }

    /// The number of CPUs in a list such as `0-3,8,10-11`; nil when it does not parse.
    static func count(list: Substring) -> Int? {
        var count = 0
        for part in list.split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.filter { !$0.isWhitespace }) }
            switch bounds.count {
            case 1:
                guard bounds[0] != nil else { return nil }
                count += 1
            case 2:
                guard let low = bounds[0], let high = bounds[1], high >= low else { return nil }
                count += high - low + 1
            default:
                return nil
            }
        }
        return count > 0 ? count : nil
    }
}
