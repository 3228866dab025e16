// The `--quant` names of the command line and the docs/contract.md §5 mode each stands for.
#pragma once

#include <string>
#include <vector>

#include "moedist/config.hpp"
#include "moedist/dtype.hpp"

namespace moedist::cli {

struct QuantChoice {
    const char* name;
    QuantMode mode;
    DType target;  // expandX dtype when quantizing; x's 8-bit format when pre_quantized
    bool pre_quantized;
};

inline const std::vector<QuantChoice>& quant_choices() {
    static const std::vector<QuantChoice> choices = {
        {"none", QuantMode::kNone, DType::kInt8, false},
        {"int8", QuantMode::kPerToken, DType::kInt8, false},
        {"static-int8", QuantMode::kStatic, DType::kInt8, false},
        {"static-hif8", QuantMode::kStatic, DType::kHiFloat8, false},
        {"fp8-e4m3", QuantMode::kPerToken, DType::kFp8E4M3, false},
        {"fp8-e5m2", QuantMode::kPerToken, DType::kFp8E5M2, false},
        {"group-e4m3", QuantMode::kPerGroup, DType::kFp8E4M3, false},
        {"group-e5m2", QuantMode::kPerGroup, DType::kFp8E5M2, false},
        {"mx-e4m3", QuantMode::kMx, DType::kFp8E4M3, false},
        {"mx-e5m2", QuantMode::kMx, DType::kFp8E5M2, false},
        {"pre-e4m3", QuantMode::kNone, DType::kFp8E4M3, true},
        {"pre-e5m2", QuantMode::kNone, DType::kFp8E5M2, true},
        {"pre-hif8", QuantMode::kNone, DType::kHiFloat8, true},
    };
    return choices;
}

inline std::vector<std::string> quant_names() {
    std::vector<std::string> names;
    for (const auto& c : quant_choices()) names.emplace_back(c.name);
    return names;
}

// "none|int8|...": the names for --help.
inline std::string quant_list() {
    std::string text;
    for (const auto& c : quant_choices()) text += (text.empty() ? "" : "|") + std::string(c.name);
    return text;
}

inline const QuantChoice& quant_choice(const std::string& name) {
    for (const auto& c : quant_choices())
        if (name == c.name) return c;
    return quant_choices().front();
}

}  // namespace moedist::cli
