#include "example_functions.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <deque>
#include <thread>

namespace prpc::example {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseNanAndInfFlag | rapidjson::kParseIterativeFlag;

struct Param {
  const char* name;
  const char* default_json;  // nullptr: required
};

// The call's arguments bound to a function's parameters, as Python binds them.
class Bound {
 public:
  Status bind(const Invocation& call, const char* fname, std::initializer_list<Param> params) {
    args_.Parse<kParseFlags>(call.args.data(), call.args.size());
    kwargs_.Parse<kParseFlags>(call.kwargs.data(), call.kwargs.size());
    if (args_.HasParseError() || !args_.IsArray()) return type_error("arguments are not a list");
    if (kwargs_.HasParseError() || !kwargs_.IsObject()) {
      return type_error("keyword arguments are not an object");
    }
    std::string f(fname);
    if (args_.Size() > params.size()) {
      return type_error(f + "() takes " + std::to_string(params.size()) +
                        " positional arguments but " + std::to_string(args_.Size()) +
                        " were given");
    }
    for (const auto& m : kwargs_.GetObject()) {
      bool known = false;
      for (const Param& p : params) known = known || m.name.GetString() == std::string_view(p.name);
      if (!known) {
        return type_error(f + "() got an unexpected keyword argument '" + m.name.GetString() + "'");
      }
    }
    std::size_t i = 0;
    for (const Param& p : params) {
      const rapidjson::Value* v = nullptr;
      auto kw = kwargs_.FindMember(p.name);
      if (i < args_.Size()) {
        if (kw != kwargs_.MemberEnd()) {
          return type_error(f + "() got multiple values for argument '" + p.name + "'");
        }
        v = &args_[static_cast<rapidjson::SizeType>(i)];
      } else if (kw != kwargs_.MemberEnd()) {
        v = &kw->value;
      } else if (p.default_json != nullptr) {
        defaults_.emplace_back();
        defaults_.back().Parse(p.default_json);
        v = &defaults_.back();
      } else {
        return type_error(f + "() missing required argument: '" + p.name + "'");
      }
      values_.push_back(v);
      ++i;
    }
    return Status::ok();
  }
  const rapidjson::Value& operator[](std::size_t i) const { return *values_[i]; }

 private:
  static Status type_error(std::string message) {
    return Status(StatusCode::kInvalidArgument, std::move(message));
  }
  rapidjson::Document args_;
  rapidjson::Document kwargs_;
  std::deque<rapidjson::Document> defaults_;
  std::vector<const rapidjson::Value*> values_;
};

std::string to_json(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

Outcome raise(std::string_view type, std::string message) {
  return Outcome::failure(StatusCode::kFunction, type, std::move(message));
}

Outcome summ(const Bound& a) {
  double total = 0;
  std::int64_t itotal = 0;
  bool all_int = true;
  for (std::size_t i = 0; i < 3; ++i) {
    const rapidjson::Value& v = a[i];
    if (!v.IsNumber()) {
      return raise("TypeError", "unsupported operand type(s) for +: expected numbers");
    }
    if (v.IsInt64()) {
      itotal += v.GetInt64();
    } else {
      all_int = false;
    }
    total += v.GetDouble();
  }
  if (all_int) return Outcome::success(std::to_string(itotal));
  rapidjson::Value out(total);
  return Outcome::success(to_json(out));
}

const std::string kParamsNone = R"({"parameters": []})";

}  // namespace

std::vector<FunctionInfo> ExampleFunctions::list() const {
  auto p = [](const char* name, const char* extra = "") {
    return std::string(R"({"name": ")") + name + R"(", "kind": "POSITIONAL_OR_KEYWORD")" + extra +
           "}";
  };
  return {
      {"ping", "", kParamsNone, "Answers \"pong\"."},
      {"summ", "",
       R"({"parameters": [)" + p("a", R"(, "annotation": "int | float")") + ", " + p("b") + ", " +
           p("z", R"(, "default": "0.5")") + "]}",
       "Returns a + b + z."},
      {"hello_world", "", kParamsNone, "Returns \"hello_world\"."},
      {"echo", "", R"({"parameters": [)" + p("value") + "]}", "Returns its argument."},
      {"slow", "", R"({"parameters": [)" + p("seconds", R"(, "default": "0.1")") + "]}",
       "Sleeps for `seconds`, then returns them."},
      {"fail", "",
       R"({"parameters": [)" + p("message", R"(, "default": "''")") + ", " +
           p("type", R"(, "default": "'ValueError'")") + "]}",
       "Raises `type` with `message`."},
      {"noop", "", kParamsNone, "Does nothing; returns None."},
  };
}

void ExampleFunctions::invoke(const Invocation& call, OutcomeCallback done) {
  Bound a;
  auto bind = [&](std::initializer_list<Param> params) {
    return a.bind(call, std::string(call.func_name).c_str(), params);
  };
  auto bad_args = [&](const Status& s) {
    done(Outcome::failure(StatusCode::kInvalidArgument, error_types::kArguments, s.message()));
  };
  const std::string_view f = call.func_name;
  if (f == "ping" || f == "hello_world" || f == "noop") {
    if (Status s = bind({}); !s.is_ok()) return bad_args(s);
    done(Outcome::success(f == "ping" ? "\"pong\"" : f == "noop" ? "null" : "\"hello_world\""));
  } else if (f == "summ") {
    if (Status s = bind({{"a", nullptr}, {"b", nullptr}, {"z", "0.5"}}); !s.is_ok()) {
      return bad_args(s);
    }
    done(summ(a));
  } else if (f == "echo") {
    if (Status s = bind({{"value", nullptr}}); !s.is_ok()) return bad_args(s);
    done(Outcome::success(to_json(a[0])));
  } else if (f == "slow") {
    if (Status s = bind({{"seconds", "0.1"}}); !s.is_ok()) return bad_args(s);
    if (!a[0].IsNumber() || a[0].GetDouble() < 0 || a[0].GetDouble() > 3600) {
      return done(raise("ValueError", "seconds must be a number between 0 and 3600"));
    }
    std::this_thread::sleep_for(
        std::chrono::microseconds(static_cast<std::int64_t>(std::llround(a[0].GetDouble() * 1e6))));
    done(Outcome::success(to_json(a[0])));
  } else if (f == "fail") {
    if (Status s = bind({{"message", "\"\""}, {"type", "\"ValueError\""}}); !s.is_ok()) {
      return bad_args(s);
    }
    if (!a[0].IsString() || !a[1].IsString()) {
      return done(raise("TypeError", "message and type must be strings"));
    }
    done(raise(a[1].GetString(), a[0].GetString()));
  } else {
    done(Outcome::failure(StatusCode::kNotFound, error_types::kUnknownFunction,
                          "function '" + std::string(f) + "' is not served by this plugin"));
  }
}

}  // namespace prpc::example
