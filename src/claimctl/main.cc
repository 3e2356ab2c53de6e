// claimctl: kubectl's language for claimfs volumes. This file only maps the command line onto
// the commands in commands.h.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "claimctl/command_line.h"
#include "claimctl/commands.h"

int main(int argc, char** argv) {
  using namespace claimfs::claimctl;
  CLI::App app{"claimctl controls claimfs volumes the way kubectl controls Kubernetes ones.",
               "claimctl"};
  app.set_version_flag("--version", "claimctl version " CLAIMCTL_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  GlobalOptions global;
  app.add_option("--socket", global.socket,
                 "claimfsd's API socket (default: $CLAIMFS_SOCKET, else "
                 "/run/claimfs/claimfsd.sock)");
  CLI::Option* ns_option =
      app.add_option("-n,--namespace", global.namespace_, "The namespace of claims")
          ->default_str("default");

  Io io{std::cin, std::cout, std::cerr};
  int exit_code = kExitOk;

  ApplyOptions apply_options;
  CLI::App* apply = app.add_subcommand(
      "apply", "Create or update objects from manifests (YAML or JSON, --- between documents)");
  apply
      ->add_option("-f,--filename", apply_options.files,
                   "A manifest file, a directory of *.yaml/*.yml/*.json files, or - for stdin")
      ->required();
  apply
      ->add_option("--dry-run", apply_options.dry_run,
                   "client: parse, default and validate only, without the daemon; server: "
                   "let the daemon check without persisting")
      ->check(CLI::IsMember({"none", "client", "server"}));
  apply->add_option("-o,--output", apply_options.output, "Print the objects as yaml, json or name")
      ->check(CLI::IsMember({"yaml", "json", "name"}));
  apply->callback([&] { exit_code = RunApply(global, apply_options, io); });

  GetOptions get_options;
  CLI::App* get = app.add_subcommand(
      "get", "List objects: get pv|pvc|sc|all [NAME...] [-o wide|yaml|json|name]");
  get->add_option("resources", get_options.args, "TYPE[,TYPE...] [NAME...] or TYPE/NAME...");
  get->add_option("-o,--output", get_options.output,
                  "wide, yaml, json, name or jsonpath='{.spec.volumeName}'")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value == "wide" || value == "yaml" || value == "json" || value == "name" ||
                value.rfind("jsonpath=", 0) == 0) {
              return "";
            }
            return "unable to match a printer suitable for the output format \"" + value +
                   "\", allowed formats are: json,jsonpath,name,wide,yaml";
          },
          "FORMAT"));
  get->add_flag("-A,--all-namespaces", get_options.all_namespaces,
                "List claims of every namespace");
  get->add_option("-l,--selector", get_options.selector, "Label selector, e.g. app=db,tier!=cache");
  get->add_flag("--no-headers", get_options.no_headers, "Leave the table header out");
  get->callback([&] { exit_code = RunGet(global, get_options, io); });

  DescribeOptions describe_options;
  CLI::App* describe = app.add_subcommand("describe", "Show an object in detail, with its events");
  describe->add_option("resources", describe_options.args, "TYPE [NAME...] or TYPE/NAME...");
  describe->add_flag("-A,--all-namespaces", describe_options.all_namespaces,
                     "Describe claims of every namespace");
  describe->add_option("-l,--selector", describe_options.selector, "Label selector");
  describe->callback([&] { exit_code = RunDescribe(global, describe_options, io); });

  DeleteOptions delete_options;
  CLI::App* del = app.add_subcommand("delete", "Delete objects by name or by manifest");
  del->add_option("resources", delete_options.args, "TYPE NAME... or TYPE/NAME...");
  del->add_option("-f,--filename", delete_options.files, "Delete the objects of these manifests");
  del->add_flag("--all", delete_options.all, "Delete every object of the given types");
  del->add_flag("--wait", delete_options.wait,
                "Wait until the objects are gone (default true; --wait=false returns at once)");
  del->add_option("--timeout", delete_options.timeout,
                  "How long to wait for the deletion (0: forever)");
  del->add_flag("--ignore-not-found", delete_options.ignore_not_found,
                "Treat objects that do not exist as deleted");
  del->callback([&] { exit_code = RunDelete(global, delete_options, io); });

  PatchOptions patch_options;
  CLI::App* patch = app.add_subcommand("patch", "Change fields of an object (e.g. grow a claim)");
  patch->add_option("resource", patch_options.args, "TYPE NAME or TYPE/NAME")->required();
  patch->add_option("-p,--patch", patch_options.patch, "The patch, as YAML or JSON")->required();
  patch->add_option("--type", patch_options.type, "strategic (default), merge or json")
      ->check(CLI::IsMember({"strategic", "merge", "json"}));
  patch->add_option("--dry-run", patch_options.dry_run, "server: check without persisting")
      ->check(CLI::IsMember({"none", "server"}));
  patch->callback([&] { exit_code = RunPatch(global, patch_options, io); });

  WaitOptions wait_options;
  CLI::App* wait = app.add_subcommand("wait", "Wait for a condition on objects");
  wait->add_option("resources", wait_options.args, "TYPE/NAME... or TYPE NAME...");
  wait->add_option("--for", wait_options.for_condition,
                   "delete, jsonpath='{.status.phase}'=Bound or condition=TYPE[=VALUE]")
      ->required();
  wait->add_option("--timeout", wait_options.timeout, "How long to wait (default 30s)");
  wait->callback([&] { exit_code = RunWait(global, wait_options, io); });

  UseOptions use_options;
  CLI::App* use = app.add_subcommand(
      "use", "Hold a lease on a claim while a command runs: use CLAIM -- CMD [ARGS...]");
  use->add_option("claim", use_options.claim, "The claim (in -n NAMESPACE)")->required();
  use->add_option("command", use_options.command,
                  "The command, after --; it runs with CLAIMFS_MOUNT set to the claim's mount")
      ->required();
  use->callback([&] { exit_code = RunUse(global, use_options, io); });

  DfOptions df_options;
  CLI::App* df = app.add_subcommand("df", "Show capacity and usage of mounted volumes");
  df->add_flag("-A,--all-namespaces", df_options.all_namespaces, "Volumes of every namespace");
  df->add_flag("--bytes", df_options.bytes, "Exact byte counts instead of 1.5G, 64M, ...");
  df->callback([&] { exit_code = RunDf(global, df_options, io); });

  CLI::App* kubeconfig = app.add_subcommand(
      "kubeconfig", "Print a kubeconfig with which kubectl talks to claimfsd (a token for you)");
  kubeconfig->callback([&] { exit_code = RunKubeconfig(global, io); });

  CLI::App* version = app.add_subcommand("version", "Print claimctl's version");
  version->callback([&] { exit_code = RunVersion(global, io); });

  // Global options are read before any command runs: callbacks run after the whole parse.
  app.parse_complete_callback([&] { global.namespace_explicit = ns_option->count() > 0; });

  try {
    std::vector<std::string> args =
        SplitShortOptionValues(std::vector<std::string>(argv + 1, argv + argc));
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::vector<std::string> rest = app.remaining();
    if (app.get_subcommands().empty() && !rest.empty() && rest.front().front() != '-') {
      std::cerr << "error: unknown command \"" << rest.front() << "\" for \"claimctl\"\n"
                << "See 'claimctl --help' for usage.\n";
      return kExitError;
    }
    std::cerr << "error: " << e.what() << "\nSee 'claimctl --help' for usage.\n";
    return kExitError;
  }
  return exit_code;
}
