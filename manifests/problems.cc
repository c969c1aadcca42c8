#include "manifests/problems.h"

#include <algorithm>

namespace cdi::apply {

std::string ObjectRef::ToString() const {
  return kind + " " + ns + "/" + (name.empty() ? std::string("(unnamed)") : name);
}

std::string Problem::ToString() const {
  std::string text;
  if (!file.empty()) text = file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": ";
  if (!object.empty()) text += object + ": ";
  if (!field.empty()) text += field + ": ";
  return text + message;
}

void Problems::Add(Problem problem) {
  const std::string text = problem.ToString();
  const bool seen = std::any_of(list_.begin(), list_.end(),
                                [&](const Problem& p) { return p.ToString() == text; });
  if (!seen) list_.push_back(std::move(problem));
}

void Problems::Add(const ObjectRef& object, int line, std::string field, std::string message) {
  Add(Problem{.file = object.file,
              .line = line > 0 ? line : object.line,
              .object = object.ToString(),
              .field = std::move(field),
              .message = std::move(message)});
}

void Problems::Append(const Problems& other) {
  for (const Problem& problem : other.list_) Add(problem);
}

Status Problems::ToStatus() const {
  if (list_.empty()) return Status::Ok();
  std::string text;
  for (const Problem& problem : list_) text += (text.empty() ? "" : "\n") + problem.ToString();
  return InvalidArgumentError(std::move(text));
}

}  // namespace cdi::apply
