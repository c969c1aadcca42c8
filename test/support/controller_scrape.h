// Reads the progress metric the way CDI's controller does
// (pkg/controller/common/util.go, GetProgressReportFromURL):
//   kubevirt_cdi_import_progress_total\{ownerUID="<uid>"\} (\d{1,3}\.?\d*)
// Written as the POSIX extended expression it is equivalent to (\d is [0-9]).
#ifndef CDI_TEST_POD_CONTROLLER_SCRAPE_H_
#define CDI_TEST_POD_CONTROLLER_SCRAPE_H_

#include <regex.h>

#include <string>

namespace cdi::test {

// The controller's capture from `body`, or "" when the expression does not
// match. `owner_uid` holds no characters special to the expression (UIDs are
// hex digits and dashes).
inline std::string ControllerProgress(const std::string& body, const std::string& owner_uid) {
  const std::string pattern = "kubevirt_cdi_import_progress_total\\{ownerUID=\"" + owner_uid +
                              "\"\\} ([0-9]{1,3}\\.?[0-9]*)";
  regex_t expression;
  if (regcomp(&expression, pattern.c_str(), REG_EXTENDED) != 0) return "";
  regmatch_t match[2];
  std::string value;
  if (regexec(&expression, body.c_str(), 2, match, 0) == 0 && match[1].rm_so >= 0) {
    value = body.substr(static_cast<size_t>(match[1].rm_so),
                        static_cast<size_t>(match[1].rm_eo - match[1].rm_so));
  }
  regfree(&expression);
  return value;
}

}  // namespace cdi::test

#endif  // CDI_TEST_POD_CONTROLLER_SCRAPE_H_
