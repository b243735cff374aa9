from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from apps.users.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (*DjangoUserAdmin.fieldsets, ("EDMS", {"fields": ("department", "employee_id")}))
    list_display = ("username", "email", "department", "employee_id", "is_staff", "is_active")
    list_filter = (*DjangoUserAdmin.list_filter, "department")
    search_fields = (*DjangoUserAdmin.search_fields, "employee_id")
