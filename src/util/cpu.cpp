#include "util/cpu.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace moedist::util {

#if defined(__x86_64__)
bool cpu_avx2() {
    static const bool value = __builtin_cpu_supports("avx2");
    return value;
}

bool cpu_f16c() {
    // CPUID.1:ECX.F16C[bit 29] (clang 14's __builtin_cpu_supports knows no "f16c").
    static const bool value = [] {
        unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
        return cpu_avx2() && __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
    }();
    return value;
}

bool cpu_avx512() {
    static const bool value = __builtin_cpu_supports("avx512f") &&
                              __builtin_cpu_supports("avx512bw") &&
                              __builtin_cpu_supports("avx512vl");
    return value;
}

bool cpu_avx512_vbmi() {
    static const bool value = cpu_avx512() && __builtin_cpu_supports("avx512vbmi");
    return value;
}
#else
bool cpu_avx2() { return false; }
bool cpu_f16c() { return false; }
bool cpu_avx512() { return false; }
bool cpu_avx512_vbmi() { return false; }
#endif

}  // namespace moedist::util
