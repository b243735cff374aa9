from django.contrib import admin

from apps.documents.models import Document, DocumentType, DocumentVersion


@admin.register(DocumentType)
class DocumentTypeAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


class DocumentVersionInline(admin.TabularInline):
    model = DocumentVersion
    extra = 0
    raw_id_fields = ("created_by",)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("document_number", "title", "document_type", "owner", "status", "is_deleted")
    list_filter = ("status", "document_type", "is_deleted")
    search_fields = ("document_number", "title")
    raw_id_fields = ("owner",)
    date_hierarchy = "created_at"
    inlines = (DocumentVersionInline,)

    def get_queryset(self, request):
        # Administrators see soft-deleted documents too.
        return Document.all_objects.select_related("document_type", "owner")


@admin.register(DocumentVersion)
class DocumentVersionAdmin(admin.ModelAdmin):
    list_display = ("document", "version_number", "created_by", "created_at")
    raw_id_fields = ("document", "created_by")
