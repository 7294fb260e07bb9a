"""Error codes are enum members (core/, shop/, groupbuy/error_codes.py), never bare strings at
a raise site, and each raise site answers the status its code is documented with."""

import ast
import importlib
import json
from pathlib import Path

import pytest

from core import error_codes as core_codes
from core.error_codes import CoreErrorCode, ErrorCode
from core.errors import ApplicationError, NotFound
from core.http import error_response
from groupbuy import error_codes as groupbuy_codes
from referral import error_codes as referral_codes
from shop import error_codes as shop_codes

ROOT = Path(__file__).resolve().parents[2]
ENUM_MODULES = {
    "core.error_codes": core_codes,
    "shop.error_codes": shop_codes,
    "groupbuy.error_codes": groupbuy_codes,
    "referral.error_codes": referral_codes,
}
ERROR_BASES = {"ApplicationError"}


def _sources() -> list[Path]:
    return [
        path
        for package in ("core", "shop", "groupbuy")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """Names of ApplicationError and every class derived from it in the scanned sources."""
    names = set(ERROR_BASES)
    grew = True
    while grew:
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
                    if bases & names:
                        names.add(node.name)
                        grew = True
    return names


def _called(node: ast.Call) -> str:
    return ast.unparse(node.func).rsplit(".", 1)[-1]


def bare_string_codes(trees: dict[Path, ast.Module]) -> list[str]:
    """``file:line`` of every string literal given as an error code: ``code=`` of an
    ApplicationError subclass, the code argument of ``error_response``, or a subclass's ``code``
    class attribute."""
    classes = _error_classes(trees)
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            literals: list[ast.AST] = []
            if isinstance(node, ast.Call) and _called(node) in classes:
                literals = [kw.value for kw in node.keywords if kw.arg == "code"]
            elif isinstance(node, ast.Call) and _called(node) == "error_response":
                literals = [kw.value for kw in node.keywords if kw.arg == "code"]
                literals += node.args[1:2]
            elif isinstance(node, ast.ClassDef) and node.name in classes:
                for statement in node.body:
                    targets = []
                    if isinstance(statement, ast.Assign):
                        targets = [ast.unparse(target) for target in statement.targets]
                    elif isinstance(statement, ast.AnnAssign):
                        targets = [ast.unparse(statement.target)]
                    if "code" in targets:
                        literals.append(statement.value)
            for value in literals:
                literal = isinstance(value, ast.Constant) and isinstance(value.value, str)
                if literal or isinstance(value, ast.JoinedStr):
                    found.append(f"{path.relative_to(ROOT)}:{value.lineno}")
    return found


@pytest.fixture(scope="module")
def trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in _sources()}


def test_no_raise_site_passes_a_bare_string_code(trees):
    assert bare_string_codes(trees) == []


def test_the_scan_finds_a_bare_string_code():
    snippet = ast.parse(
        "class Gone(NotFound):\n"
        "    code = 'gone'\n"
        "raise Conflict('x', code='taken')\n"
        "raise Gone(code=f'late')\n"
        "error_response(409, 'busy', 'm')\n"
        "raise Conflict('x', code=OrderErrorCode.ILLEGAL_TRANSITION)\n"
    )
    trees = {ROOT / "core" / "example.py": snippet, ROOT / "core" / "errors.py": _errors_tree()}

    assert bare_string_codes(trees) == [
        "core/example.py:2",
        "core/example.py:3",
        "core/example.py:4",
        "core/example.py:5",
    ]


def _errors_tree() -> ast.Module:
    return ast.parse((ROOT / "core" / "errors.py").read_text())


def _member(node: ast.AST, imports: dict[str, str]) -> ErrorCode | None:
    """The enum member ``Enum.MEMBER`` names, if the enum is imported from an error-codes
    module."""
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
        return None
    module = imports.get(node.value.id)
    if module is None:
        return None
    return getattr(getattr(ENUM_MODULES[module], node.value.id), node.attr)


def _status_of_class(name: str, imports: dict[str, str]) -> int:
    module = importlib.import_module(imports.get(name, "core.errors"))
    return getattr(module, name).status


def test_every_raise_site_answers_the_status_of_its_code(trees):
    checked, wrong = 0, []
    classes = _error_classes(trees)
    for path, tree in trees.items():
        imports = {
            alias.asname or alias.name: node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        enum_imports = {name: mod for name, mod in imports.items() if mod in ENUM_MODULES}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called(node) in classes):
                continue
            keywords = {kw.arg: kw.value for kw in node.keywords}
            member = _member(keywords.get("code"), enum_imports) if "code" in keywords else None
            if member is None:
                continue
            explicit = keywords.get("status")
            if isinstance(explicit, ast.Constant):
                status = explicit.value
            else:
                status = _status_of_class(_called(node), imports)
            checked += 1
            if status != member.status:
                wrong.append((f"{path.relative_to(ROOT)}:{node.lineno}", member, status))

    assert wrong == []
    assert checked >= 80  # the scan really resolves the raise sites


def _all_enums() -> list[type[ErrorCode]]:
    return [
        value
        for module in ENUM_MODULES.values()
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ErrorCode) and value is not ErrorCode
    ]


def test_a_code_in_two_areas_has_one_status_and_every_code_is_snake_case():
    statuses: dict[str, set[int]] = {}
    for enum in _all_enums():
        for member in enum:
            statuses.setdefault(member.value, set()).add(member.status)
            assert member.value.isidentifier() and member.value == member.value.lower()

    assert {code: s for code, s in statuses.items() if len(s) > 1} == {}
    assert len(statuses) >= 80


def test_an_enum_code_renders_as_its_plain_string():
    response = error_response(404, CoreErrorCode.NOT_FOUND, "gone")
    error = NotFound("gone")

    assert json.loads(response.content)["error"]["code"] == "not_found"
    assert json.dumps({"code": error.code}) == '{"code": "not_found"}'
    assert ApplicationError().code == "bad_request"
    assert shop_codes.CatalogErrorCode.OUT_OF_STOCK.status == 409
