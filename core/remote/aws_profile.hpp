// The AWS shared files: ~/.aws/credentials and ~/.aws/config (INI), read the way the AWS CLI reads them.
//
// Credentials file: sections "[NAME]". Config file: "[default]" and "[profile NAME]" (a bare "[NAME]" other
// than default is ignored there, as the CLI does). A profile's settings are the config file's section
// overlaid by the credentials file's (the credentials file wins). Lines: "key = value", comments starting
// with '#' or ';', blank lines; an indented line continues a nested block ("s3 =\n  addressing_style =
// path"), which is kept under "PARENT.key" and otherwise unused here. Keys are case-insensitive.
//
// A malformed line is an error naming the file and line number, never the line's text (it could be a
// secret).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/util/result.hpp"

namespace mf {

using IniSection = std::map<std::string, std::string, std::less<>>;
using IniFile = std::map<std::string, IniSection, std::less<>>;

// Parses INI text; `name` is what errors call the file (its path).
Result<IniFile> parse_ini(std::string_view text, std::string_view name);

struct AwsProfile {
  std::string name;           // "default" or AWS_PROFILE
  bool found = false;         // a section of that name exists in either file
  IniSection settings;        // merged, keys lower-case
  std::string files;          // "CREDENTIALS_PATH, CONFIG_PATH" as read, for messages
  std::string error;          // a malformed or unreadable file (empty: fine)
  std::string get(std::string_view key) const {
    auto it = settings.find(key);
    return it == settings.end() ? std::string() : it->second;
  }
};

// Reads both files (a missing file is no error) and selects `profile`.
AwsProfile load_aws_profile(const std::string& credentials_path, const std::string& config_path,
                            const std::string& profile);

// Reads a whole small regular file (at most `cap` bytes) with raw system calls; ENOENT when it does not exist,
// EINVAL when it is not a regular file.
Result<std::string> read_small_file(const std::string& path, size_t cap = 1 << 20);

}  // namespace mf
